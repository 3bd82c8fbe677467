import { FifoSlots } from '../common/concurrency/fifo-slots';
import { LlmProvider, LlmRequest, LlmStreamPart } from './llm-provider';

/**
 * At most `limit` upstream calls at once (LLM_MAX_CONCURRENCY); the rest queue in order, so a
 * burst of turns cannot stampede the provider. A call whose signal aborts while it queues leaves
 * the queue at once (its stream rejects with the signal's reason) and never reaches the upstream,
 * so a stopped turn does not wait for other calls to end.
 */
export class ConcurrencyLimitedLlmProvider extends LlmProvider {
  private readonly slots: FifoSlots;

  constructor(
    private readonly inner: LlmProvider,
    limit: number,
  ) {
    super();
    this.slots = new FifoSlots(limit);
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
    const release = await this.slots.take(request.signal);
    try {
      yield* this.inner.stream(request);
    } finally {
      release();
    }
  }
}
