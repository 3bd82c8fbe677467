import { setImmediate as nextTick } from 'node:timers/promises';
import { ConcurrencyLimitedLlmProvider } from '../../src/llm/concurrency-limited-llm.provider';
import { LlmProvider, LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';
import { deferred } from '../support/deferred';

/** Holds every call until released (oldest first), recording the order calls start in. */
class GatedProvider extends LlmProvider {
  readonly name = 'gated';
  running = 0;
  maxRunning = 0;
  /** The content of each call's message, in the order the calls started. */
  readonly startOrder: string[] = [];
  private gates: (() => void)[] = [];
  private starts: ReturnType<typeof deferred>[] = [];

  releaseOne(): void {
    this.gates.shift()?.();
  }

  /** Resolves once `count` calls have started (each held at its gate, ready for releaseOne). */
  started(count: number): Promise<void> {
    while (this.starts.length < count) this.starts.push(deferred());
    return this.starts[count - 1].promise;
  }

  async *stream(request: LlmRequest): AsyncGenerator<LlmStreamPart> {
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      const gate = new Promise<void>((resolve) => this.gates.push(resolve));
      this.startOrder.push(request.messages[0].content);
      if (this.starts.length < this.startOrder.length) this.starts.push(deferred());
      this.starts[this.startOrder.length - 1].resolve();
      await gate;
      yield { type: 'delta', content: 'ok' };
    } finally {
      this.running -= 1;
    }
  }
}

const request = (content = 'hi'): LlmRequest => ({
  model: 'm',
  messages: [{ role: 'user', content }],
  maxOutputTokens: 10,
});
/** Lets whatever is about to happen happen: only to see that something did not. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await nextTick();
};

describe(ConcurrencyLimitedLlmProvider.name, () => {
  it('should run at most `limit` calls at once and queue the rest in order', async () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 2);
    const calls = Array.from({ length: 5 }, (_, i) => limited.complete(request(`call ${i}`)));
    await inner.started(2);
    await settle();
    expect(inner.startOrder).toEqual(['call 0', 'call 1']);

    inner.releaseOne();
    await inner.started(3);
    expect(inner.running).toBe(2);
    for (const count of [4, 5]) {
      inner.releaseOne();
      await inner.started(count);
    }
    inner.releaseOne();
    inner.releaseOne();

    await expect(Promise.all(calls)).resolves.toHaveLength(5);
    expect(inner.startOrder).toEqual(['call 0', 'call 1', 'call 2', 'call 3', 'call 4']);
    expect(inner.maxRunning).toBe(2);
  });

  it('should not call the upstream for a request aborted while it queued', async () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 1);
    const first = limited.complete(request('first'));
    const controller = new AbortController();
    const second = limited.complete({ ...request('second'), signal: controller.signal });
    const secondFails = expect(second).rejects.toThrow();
    controller.abort();
    await inner.started(1);
    inner.releaseOne();
    await first;
    await secondFails;
    await settle();
    expect(inner.startOrder).toEqual(['first']);
  });

  it('should end a queued call as soon as its signal aborts, and pass on the slot it is granted after', async () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 1);
    const first = limited.complete(request('first'));
    const controller = new AbortController();
    const second = limited.complete({ ...request('second'), signal: controller.signal });
    await inner.started(1);
    controller.abort('stopped');

    await expect(second).rejects.toBe('stopped');
    expect(inner.running).toBe(1);
    inner.releaseOne();
    await first;
    const third = limited.complete(request('third'));
    await inner.started(2);
    expect(inner.startOrder).toEqual(['first', 'third']);
    inner.releaseOne();
    await expect(third).resolves.toMatchObject({ content: 'ok' });
  });

  it('should present the inner provider', () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 1);
    expect(limited.name).toBe('gated');
    expect(limited.isOffline).toBe(false);
    expect(limited.describe()).toBe('gated');
  });
});
