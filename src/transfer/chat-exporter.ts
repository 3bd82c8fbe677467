import { Injectable } from '@nestjs/common';
import { Chat, ChatKey, chatKeyOf } from '../chats/chat';
import { ChatNotFoundError } from '../chats/chat-errors';
import { ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { Message } from '../chats/message';
import { chatMarkdown } from './chat-markdown';
import { exportDocumentText } from './export-document';

/** How much one read asks for: an export holds a page of chats and a page of messages at a time. */
export const EXPORT_PAGE = { chats: 100, messages: 500 } as const;

export type ExportFormat = 'json' | 'markdown';

/** Chats as export documents or Markdown, read a page at a time and given out as text as it is read. */
@Injectable()
export class ChatExporter {
  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
  ) {}

  /** The chat's export document or Markdown; a chat that is not the tenant's is not found (before any text). */
  async exportChat(key: ChatKey, format: ExportFormat): Promise<AsyncIterable<string>> {
    const chat = await this.chats.get(key);
    return format === 'markdown'
      ? chatMarkdown(chat, await readFirstPage(this.currentBranchOf(chat)))
      : exportDocumentText(chat, await readFirstPage(this.messagesOf(chat)));
  }

  /** Every chat of the tenant, newest first, one export document a line. */
  async *exportAll(tenantId: string): AsyncGenerator<string> {
    for (let beforeId: string | undefined; ;) {
      const chats = await this.repository.listChats(tenantId, { limit: EXPORT_PAGE.chats, beforeId });
      for (const chat of chats) {
        let messages: AsyncIterable<Message[]>;
        try {
          messages = await readFirstPage(this.messagesOf(chat));
        } catch (error) {
          if (error instanceof ChatNotFoundError) continue; // deleted since it was listed
          throw error;
        }
        yield* exportDocumentText(chat, messages);
        yield '\n';
      }
      if (chats.length < EXPORT_PAGE.chats) return;
      beforeId = chats[chats.length - 1].id;
    }
  }

  /**
   * Every message of every branch by seq, as the chat was read: messages stored since are left
   * out, so the document's current message and count match its messages. Throws
   * ChatNotFoundError when the chat is deleted meanwhile.
   */
  private async *messagesOf(chat: Chat): AsyncGenerator<Message[]> {
    for (let afterSeq = 0; afterSeq < chat.messageCount;) {
      const limit = Math.min(EXPORT_PAGE.messages, chat.messageCount - afterSeq);
      const page = await this.repository.listMessages(chatKeyOf(chat), { limit, afterSeq });
      if (page.length === 0) throw new ChatNotFoundError(chat.id);
      yield page;
      afterSeq = page[page.length - 1].seq;
    }
  }

  /** The current branch, root first. Throws ChatNotFoundError when the chat is deleted meanwhile. */
  private async *currentBranchOf(chat: Chat): AsyncGenerator<Message[]> {
    if (chat.currentMessageId === null) return;
    const page = { throughId: chat.currentMessageId, limit: EXPORT_PAGE.messages };
    for (let afterSeq = 0; ;) {
      const messages = await this.repository.listBranch(chatKeyOf(chat), { ...page, afterSeq });
      // A branch ends with a short page; an empty one ends it only if the chat is still there.
      if (messages.length === 0 && (afterSeq === 0 || !(await this.repository.findChat(chatKeyOf(chat))))) {
        throw new ChatNotFoundError(chat.id);
      }
      if (messages.length > 0) yield messages;
      if (messages.length < page.limit) return;
      afterSeq = messages[messages.length - 1].seq;
    }
  }
}

/**
 * Reads the first page before any text is written, so that a chat deleted by then is not found
 * (a 404, or left out of a whole export) instead of written as a document that names messages it
 * lacks. A chat deleted after that cuts the connection, since the status is gone.
 */
async function readFirstPage(pages: AsyncGenerator<Message[]>): Promise<AsyncIterable<Message[]>> {
  const first = await pages.next();
  return (async function* () {
    if (first.done) return;
    yield first.value;
    yield* pages;
  })();
}
