import { setImmediate as nextTick } from 'node:timers/promises';
import { ConcurrencyLimitedLlmProvider } from '../../src/llm/concurrency-limited-llm.provider';
import { LlmProvider, LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';

/** Holds every call until released, counting how many run at once. */
class GatedProvider extends LlmProvider {
  readonly name = 'gated';
  running = 0;
  started = 0;
  private gates: (() => void)[] = [];

  releaseOne(): void {
    this.gates.shift()?.();
  }

  async *stream(_request: LlmRequest): AsyncGenerator<LlmStreamPart> {
    this.running += 1;
    this.started += 1;
    try {
      await new Promise<void>((resolve) => this.gates.push(resolve));
      yield { type: 'delta', content: 'ok' };
    } finally {
      this.running -= 1;
    }
  }
}

const request: LlmRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }], maxOutputTokens: 10 };
const settle = async () => {
  for (let i = 0; i < 10; i++) await nextTick();
};

describe(ConcurrencyLimitedLlmProvider.name, () => {
  it('should run at most `limit` calls at once and queue the rest in order', async () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 2);
    const calls = Array.from({ length: 5 }, () => limited.complete(request));
    await settle();
    expect(inner.started).toBe(2);

    inner.releaseOne();
    await settle();
    expect(inner.started).toBe(3);
    expect(inner.running).toBe(2);

    for (let i = 0; i < 4; i++) {
      inner.releaseOne();
      await settle();
    }
    await expect(Promise.all(calls)).resolves.toHaveLength(5);
    expect(inner.started).toBe(5);
  });

  it('should not call the upstream for a request aborted while it queued', async () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 1);
    const first = limited.complete(request);
    const controller = new AbortController();
    const second = limited.complete({ ...request, signal: controller.signal });
    const secondFails = expect(second).rejects.toThrow();
    controller.abort();
    await settle();
    inner.releaseOne();
    await first;
    await secondFails;
    expect(inner.started).toBe(1);
  });

  it('should end a queued call as soon as its signal aborts, and pass on the slot it is granted after', async () => {
    const inner = new GatedProvider();
    const limited = new ConcurrencyLimitedLlmProvider(inner, 1);
    const first = limited.complete(request);
    const controller = new AbortController();
    const second = limited.complete({ ...request, signal: controller.signal });
    await settle();
    controller.abort('stopped');

    await expect(second).rejects.toBe('stopped');
    expect(inner.running).toBe(1);
    inner.releaseOne();
    await first;
    const third = limited.complete(request);
    await settle();
    expect(inner.started).toBe(2);
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
