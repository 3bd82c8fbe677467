import { parseLimitsConfig } from '../../src/config/limits.config';
import { ChatBusyError, ShuttingDownError } from '../../src/messages/message-errors';
import { stopReasonOf, TurnAdmission } from '../../src/messages/turn-admission';

const admission = (maxPendingTurnsPerChat = 32) =>
  new TurnAdmission(parseLimitsConfig({ MAX_PENDING_TURNS_PER_CHAT: String(maxPendingTurnsPerChat) }));

describe(TurnAdmission.name, () => {
  it('should stop only the turn told to, with the reason given', () => {
    const turns = admission();
    const first = turns.admit('a');
    const second = turns.admit('a');

    first.stop('client-left');
    first.stop('shutting-down');

    expect(stopReasonOf(first.signal)).toBe('client-left');
    expect(stopReasonOf(second.signal)).toBeUndefined();
    first.release();
    second.release();
  });

  it("should refuse a turn beyond the chat's waiting places until one takes the chat or leaves", () => {
    const turns = admission(2);
    const holder = turns.admit('a');
    holder.holdsChat();
    const waiting = [turns.admit('a'), turns.admit('a')];

    expect(() => turns.admit('a')).toThrow(ChatBusyError);
    expect(turns.admit('b')).toBeDefined();
    waiting[0].release();
    const third = turns.admit('a');
    expect(() => turns.admit('a')).toThrow(ChatBusyError);
    holder.release();
    waiting[1].holdsChat();
    expect(turns.admit('a')).toBeDefined();
    expect(third).toBeDefined();
  });

  it('should stop the turns still running once the grace period is over, and refuse new ones', async () => {
    const turns = admission();
    const first = turns.admit('a');
    const second = turns.admit('b');
    first.signal.addEventListener('abort', () => first.release());
    second.signal.addEventListener('abort', () => second.release());

    await turns.drain(0);

    expect(stopReasonOf(first.signal)).toBe('shutting-down');
    expect(stopReasonOf(second.signal)).toBe('shutting-down');
    expect(() => turns.admit('c')).toThrow(ShuttingDownError);
  });
});
