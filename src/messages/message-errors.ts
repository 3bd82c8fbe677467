import { Message, ReplyFailure } from '../chats/message';
import { DomainError, ErrorKind } from '../common/errors/domain-error';

/**
 * A turn's failure after it was admitted: the messages it stored travel with it (the problem
 * document shows them, turn-problems.ts), so the client knows nothing was lost.
 */
export abstract class TurnFailure extends DomainError {
  abstract readonly userMessage: Message | null;
  abstract readonly partialReply: Message | null;
}

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
 * The chat's model has a window that the reply's share (LLM_MAX_OUTPUT_TOKENS) fills: no message
 * fits. Start-up refuses this for LLM_MODEL; a chat may name a smaller model of its own.
 */
export class ModelWindowTooSmallError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'model-window-too-small';
  readonly title = "The chat's model has no room for a message";

  constructor(model: string, window: number, maxOutputTokens: number) {
    super(
      `The context window of this chat's model "${model}" (${window} tokens) leaves no room beside the ` +
        `${maxOutputTokens} tokens kept for the reply, so no message fits; use a chat with another model.`,
    );
  }
}

/**
 * A regeneration names a reply that answers no user message, so there is nothing to answer again.
 * The service's own replies all answer one; an imported chat may open with a reply, or have two in
 * a row.
 */
export class ReplyAnswersNoMessageError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'reply-answers-no-message';
  readonly title = 'The reply answers no user message';

  constructor(readonly messageId: string) {
    super(
      `Message ${messageId} is a reply that answers no user message, so there is nothing to answer again. ` +
        'Regenerate a reply to a user message, or send a new message.',
    );
  }

  override extensions() {
    return { errors: [{ field: 'messageId', message: 'a reply that answers no user message' }] };
  }
}

/**
 * The upstream LLM failed, or the service had to stop, after the user message was stored. Same
 * status as the LLM failure; the stored user message (and any partial reply, stored as
 * incomplete) travel with it, and the problem document shows them (turn-problems.ts), so the
 * client knows nothing was lost.
 */
export class ReplyFailedError extends TurnFailure {
  readonly kind: DomainError['kind'];
  readonly code: string;
  readonly title: string;
  override readonly retryAfterSeconds?: number;

  constructor(
    readonly failure: DomainError,
    readonly userMessage: Message,
    readonly partialReply: Message | null,
  ) {
    // The failure's cause (the upstream's own words) is logged with the turn's problem.
    super(
      `${failure.message} Your message was stored as message ${userMessage.seq}; send another message to try again.`,
      { cause: failure.cause },
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

/** The client left mid-turn (with CLIENT_DISCONNECT=stop): the upstream call was aborted and what was generated kept. */
export class TurnCancelledError extends TurnFailure {
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

/**
 * A turn that ended without a stored reply whose failure is no longer known: the instance that
 * ran it stopped (it crashed, or was killed), or its failure was forgotten. Also the turn's own
 * failure when its instance stalled past the chat's lock and another turn may hold the chat, or
 * when it could not take the chat's lock (the storage failed), before it stored anything.
 */
export class TurnInterruptedError extends TurnFailure {
  readonly kind = 'unavailable';
  readonly code = 'turn-interrupted';
  readonly title = 'The turn ended without a reply';
  override readonly retryAfterSeconds = 1;
  readonly partialReply = null;

  constructor(readonly userMessage: Message | null) {
    super(
      userMessage
        ? `The turn ended without a stored reply. Your message was stored as message ${userMessage.seq}; regenerate it to try again.`
        : 'The turn ended before it stored anything; send the message again.',
    );
  }
}

/**
 * A turn's failure as another instance reported it (the relay), or as its partial reply recorded it,
 * with the messages it had stored.
 */
export class RelayedTurnFailure extends TurnFailure {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    readonly title: string,
    detail: string,
    override readonly retryAfterSeconds: number | undefined,
    readonly userMessage: Message | null,
    readonly partialReply: Message | null,
  ) {
    super(detail);
  }
}

/** The turn to resume runs on another instance, and without REDIS_URL its events stay there. */
export class TurnElsewhereError extends DomainError {
  readonly kind = 'conflict';
  readonly code = 'turn-elsewhere';
  readonly title = 'The turn runs on another instance';

  constructor() {
    super(
      "This chat's turn runs on another instance of the service, and its events can only be resumed there " +
        '(instances share them through Redis when REDIS_URL is set). Retry, or read the messages once it ends.',
    );
  }
}

/**
 * A stop or resume that needs the relay to the other instances (Redis) while it is unreachable:
 * the turn may run elsewhere, and this instance cannot tell or reach it.
 */
export class RelayUnavailableError extends DomainError {
  readonly kind = 'unavailable';
  readonly code = 'redis-unavailable';
  readonly title = 'Redis is unreachable';

  constructor(options?: ErrorOptions) {
    super(
      'A turn running on another instance is stopped or resumed through Redis, which this instance cannot ' +
        'reach now. Retry shortly.',
      options,
    );
  }
}

/** A Last-Event-ID this service did not give out for this chat. */
export class UnknownLastEventIdError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'validation-failed';
  readonly title = 'Request validation failed';

  constructor(readonly field: 'Last-Event-ID' | 'lastEventId') {
    super(`${field}: not an event id this service gave out for this chat`);
  }

  override extensions() {
    return { errors: [{ field: this.field, message: 'not an event id this service gave out for this chat' }] };
  }
}

/** What a partial reply records of its turn's failure ({@link Message.failure}). */
export const replyFailureOf = (failure: TurnFailure): ReplyFailure => ({
  kind: failure.kind,
  code: failure.code,
  title: failure.title,
  detail: failure.message,
});

/** The failure a partial reply recorded, as its turn's stream told it. */
export const recordedFailure = (
  { kind, code, title, detail }: ReplyFailure,
  userMessage: Message,
  partialReply: Message,
): TurnFailure => new RelayedTurnFailure(kind, code, title, detail, undefined, userMessage, partialReply);
