import { Message } from '../chats/message';
import { DomainError } from '../common/errors/domain-error';

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

/**
 * The upstream LLM failed, or the service had to stop, after the user message was stored. Same
 * status as the LLM failure; the stored user message (and any partial reply, stored as
 * incomplete) travel with it, and the problem document shows them (turn-problems.ts), so the
 * client knows nothing was lost.
 */
export class ReplyFailedError extends DomainError {
  readonly kind: DomainError['kind'];
  readonly code: string;
  readonly title: string;
  override readonly retryAfterSeconds?: number;

  constructor(
    readonly failure: DomainError,
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
}

/** Too many turns already wait on this chat (MAX_PENDING_TURNS_PER_CHAT). */
export class ChatBusyError extends DomainError {
  readonly kind = 'too-many';
  readonly code = 'chat-busy';
  readonly title = 'Too many turns wait on this chat';

  constructor(
    pending: number,
    override readonly retryAfterSeconds: number,
  ) {
    super(`${pending} turns already wait on this chat; send this message again after the time in Retry-After.`);
  }
}

/** The instance is shutting down: new turns go elsewhere, stopped ones keep what they had. */
export class ShuttingDownError extends DomainError {
  readonly kind = 'unavailable';
  readonly code = 'shutting-down';
  readonly title = 'The service is shutting down';
  override readonly retryAfterSeconds = 1;

  constructor() {
    super('This instance is shutting down; send the message again and another instance will answer.');
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
}
