import { DomainError } from '../common/errors/domain-error';

export class ChatNotFoundError extends DomainError {
  readonly kind = 'not-found';
  readonly code = 'chat-not-found';
  readonly title = 'Chat not found';

  constructor(readonly chatId: string) {
    super(`No chat has the id ${chatId}.`);
  }
}

/** A message named in a request body (`field`) is no message of the chat: the body is invalid. */
export class UnknownMessageIdError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'validation-failed';
  readonly title = 'Request validation failed';

  constructor(
    readonly messageId: string,
    readonly field: 'parentId' | 'currentMessageId',
  ) {
    super(`${field}: no message of this chat has the id ${messageId}`);
  }

  override extensions() {
    return { errors: [{ field: this.field, message: `no message of this chat has the id ${this.messageId}` }] };
  }
}

/** A message named in a path is no message of the chat. */
export class MessageNotFoundError extends DomainError {
  readonly kind = 'not-found';
  readonly code = 'message-not-found';
  readonly title = 'Message not found';

  constructor(readonly messageId: string) {
    super(`No message of this chat has the id ${messageId}.`);
  }
}

/**
 * The chat's turn lock expired while its turn ran (renewals failed for CHAT_LOCK_LEASE_MS) and may
 * belong to another turn: the write was refused. Not a request's failure: the turn reports it.
 */
export class ChatLeaseLostError extends Error {
  override readonly name = 'ChatLeaseLostError';

  constructor(readonly chatId: string) {
    super(`The turn lock of chat ${chatId} expired while its turn ran (renewals failed for CHAT_LOCK_LEASE_MS).`);
  }
}
