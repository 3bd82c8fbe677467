import { getEventListeners } from 'node:events';
import { linkAbortSignals } from '../../src/common/abort/linked-abort-signal';
import type { AppConfig } from '../../src/config/app-config';
import { ShuttingDownError } from '../../src/messages/message-errors';
import { TurnAdmission } from '../../src/messages/turn-admission';

const admission = () => new TurnAdmission({ maxPendingTurnsPerChat: 32 } as AppConfig);

describe(TurnAdmission.name, () => {
  it('should give each turn a stop signal of its own, so running turns never pile listeners on one', () => {
    const turns = admission();
    // What every running turn does: it links the client's signal with its stop signal.
    const running = Array.from({ length: 50 }, (_, i) => {
      const admitted = turns.admit(`chat-${i % 5}`);
      return { admitted, linked: linkAbortSignals(new AbortController().signal, admitted.stopSignal) };
    });

    // Node warns of a leak past 10 listeners on one signal.
    for (const { admitted } of running) expect(getEventListeners(admitted.stopSignal, 'abort')).toHaveLength(1);
    for (const { admitted, linked } of running) {
      linked.release();
      admitted.release();
    }
  });

  it('should stop the turns still running once the grace period is over, and refuse new ones', async () => {
    const turns = admission();
    const first = turns.admit('a');
    const second = turns.admit('b');
    first.stopSignal.addEventListener('abort', () => first.release());
    second.stopSignal.addEventListener('abort', () => second.release());

    await turns.drain(0);

    expect(first.stopSignal.aborted).toBe(true);
    expect(second.stopSignal.aborted).toBe(true);
    expect(() => turns.admit('c')).toThrow(ShuttingDownError);
  });
});
