import { DomainError } from '../common/errors/domain-error';

export class ChatNotFoundError extends DomainError {
  readonly kind = 'not-found';
  readonly code = 'chat-not-found';
  readonly title = 'Chat not found';

  constructor(readonly chatId: string) {
    super(`No chat has the id ${chatId}.`);
  }
}
