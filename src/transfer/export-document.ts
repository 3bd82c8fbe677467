import { Chat } from '../chats/chat';
import { ChatDto } from '../chats/dto/chat.dto';
import { Message } from '../chats/message';
import { MessageDto } from '../messages/dto/message.dto';

/** The `format` of an export document; a later shape that reads differently gets a new name. */
export const EXPORT_FORMAT = 'konko.chat.v1';

/**
 * The chat's export document as JSON text, written a page of messages at a time as `pages` yields
 * them: the same text as `JSON.stringify` of the whole document, without holding it whole.
 */
export async function* exportDocumentText(chat: Chat, pages: AsyncIterable<Message[]>): AsyncGenerator<string> {
  yield `{"format":${JSON.stringify(EXPORT_FORMAT)},"chat":${JSON.stringify(ChatDto.from(chat))},"messages":[`;
  let separator = '';
  for await (const page of pages) {
    yield separator + page.map((message) => JSON.stringify(MessageDto.from(message))).join(',');
    separator = ',';
  }
  yield ']}';
}
