import { Semaphore } from 'async-mutex';
import { LlmProvider, LlmRequest, LlmStreamPart } from './llm-provider';

/**
 * At most `limit` upstream calls at once (LLM_MAX_CONCURRENCY); the rest queue in order, so a
 * burst of turns cannot stampede the provider. A call whose signal aborts while it queues never
 * reaches the upstream.
 */
export class ConcurrencyLimitedLlmProvider extends LlmProvider {
  private readonly slots: Semaphore;

  constructor(
    private readonly inner: LlmProvider,
    limit: number,
  ) {
    super();
    this.slots = new Semaphore(limit);
  }

  get name(): string {
    return this.inner.name;
  }

  override get isOffline(): boolean {
    return this.inner.isOffline;
  }

  override describe(): string {
    return this.inner.describe();
  }

  async *stream(request: LlmRequest): AsyncGenerator<LlmStreamPart> {
    const [, release] = await this.slots.acquire();
    try {
      request.signal?.throwIfAborted();
      yield* this.inner.stream(request);
    } finally {
      release();
    }
  }
}
