import { DomainError } from '../common/errors/domain-error';
import { LlmError } from '../llm/llm-errors';
import { MessageDto } from './dto/message.dto';
import { Message } from './message';

/** The new message alone does not fit the model's context budget. */
export class MessageTooLongForContextError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'message-exceeds-context';
  readonly title = 'Message does not fit the context window';

  constructor(
    readonly tokens: number,
    readonly budget: number,
  ) {
    super(`The message needs ${tokens} tokens with the system prompt, but the context budget is ${budget} tokens.`);
  }

  override extensions() {
    return { errors: [{ field: 'content', message: this.message }] };
  }
}

/** What a turn had stored when it stopped early; the problem document carries both. */
function storedSoFar(userMessage: Message, partialReply: Message | null) {
  return {
    userMessage: MessageDto.from(userMessage),
    ...(partialReply ? { assistantMessage: MessageDto.from(partialReply) } : {}),
  };
}

/**
 * The upstream LLM failed after the user message was stored. Same status as the LLM failure;
 * the stored user message (and any partial reply, stored as incomplete) travel with it so the
 * client knows nothing was lost.
 */
export class ReplyFailedError extends DomainError {
  readonly kind: DomainError['kind'];
  readonly code: string;
  readonly title: string;
  override readonly retryAfterSeconds?: number;

  constructor(
    readonly failure: LlmError,
    readonly userMessage: Message,
    readonly partialReply: Message | null,
  ) {
    super(
      `${failure.message} Your message was stored as message ${userMessage.seq}; send another message to try again.`,
    );
    this.kind = failure.kind;
    this.code = failure.code;
    this.title = failure.title;
    this.retryAfterSeconds = failure.retryAfterSeconds;
  }

  override extensions() {
    return storedSoFar(this.userMessage, this.partialReply);
  }
}

/** The client left mid-turn: the upstream call was aborted and what was generated kept. */
export class TurnCancelledError extends DomainError {
  readonly kind = 'client-closed';
  readonly code = 'turn-cancelled';
  readonly title = 'The client closed the request';

  constructor(
    readonly userMessage: Message | null,
    readonly partialReply: Message | null,
  ) {
    super('The client closed the request before the reply was complete.');
  }

  override extensions() {
    return this.userMessage ? storedSoFar(this.userMessage, this.partialReply) : {};
  }
}
