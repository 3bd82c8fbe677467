import { ParseIdPipe } from '../common/ids/parse-id.pipe';
import { ChatNotFoundError } from './chat-errors';

/** `{chatId}` path parameters: a non-UUID is an unknown chat (404). */
export const ChatIdPipe = new ParseIdPipe((id) => new ChatNotFoundError(id));
