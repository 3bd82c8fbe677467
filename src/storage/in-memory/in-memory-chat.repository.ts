import { Injectable } from '@nestjs/common';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatChanges, NewChat } from '../../chats/chat';
import { ChatNotFoundError } from '../../chats/chat-errors';
import { ChatRepository } from '../../chats/chat.repository';
import { Message, NewMessage } from '../../messages/message';
import { KeyedMutex } from '../keyed-mutex';

interface ChatRecord {
  chat: Chat;
  messages: Message[];
}

/** Index of the first id in the sorted array that is >= `id`. */
function lowerBound(sortedIds: string[], id: string): number {
  let low = 0;
  let high = sortedIds.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sortedIds[mid] < id) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * The default storage: everything in process memory, gone on restart. Stored objects are
 * frozen and replaced on change, so callers can never mutate what is stored.
 */
@Injectable()
export class InMemoryChatRepository extends ChatRepository {
  private readonly chats = new Map<string, ChatRecord>();
  /** Chat ids in ascending order; UUIDv7 ids sort by creation. */
  private readonly order: string[] = [];
  private readonly locks = new KeyedMutex();

  async createChat(input: NewChat): Promise<Chat> {
    const now = new Date();
    const chat: Chat = Object.freeze({
      id: uuidv7(),
      title: input.title,
      systemPrompt: input.systemPrompt,
      model: input.model,
      metadata: Object.freeze({ ...input.metadata }),
      messageCount: 0,
      createdAt: now,
      updatedAt: now,
      lastMessageAt: null,
    });
    this.chats.set(chat.id, { chat, messages: [] });
    const last = this.order[this.order.length - 1];
    if (last === undefined || last < chat.id) this.order.push(chat.id);
    else this.order.splice(lowerBound(this.order, chat.id), 0, chat.id);
    return chat;
  }

  async findChat(chatId: string): Promise<Chat | null> {
    return this.chats.get(chatId)?.chat ?? null;
  }

  async listChats({ limit, beforeId }: { limit: number; beforeId?: string }): Promise<Chat[]> {
    const start = beforeId === undefined ? this.order.length : lowerBound(this.order, beforeId);
    const page: Chat[] = [];
    for (let i = start - 1; i >= 0 && page.length < limit; i--) {
      page.push(this.chats.get(this.order[i])!.chat);
    }
    return page;
  }

  async updateChat(chatId: string, changes: ChatChanges): Promise<Chat | null> {
    const record = this.chats.get(chatId);
    if (!record) return null;
    record.chat = Object.freeze({
      ...record.chat,
      ...changes,
      metadata: Object.freeze({ ...(changes.metadata ?? record.chat.metadata) }),
      updatedAt: new Date(),
    });
    return record.chat;
  }

  async setTitleIfUntitled(chatId: string, title: string): Promise<Chat | null> {
    const record = this.chats.get(chatId);
    if (!record || record.chat.title !== null) return null;
    return this.updateChat(chatId, { title });
  }

  async deleteChat(chatId: string): Promise<boolean> {
    if (!this.chats.delete(chatId)) return false;
    this.order.splice(lowerBound(this.order, chatId), 1);
    return true;
  }

  async appendMessage(chatId: string, input: NewMessage): Promise<Message> {
    const record = this.chats.get(chatId);
    if (!record) throw new ChatNotFoundError(chatId);
    const createdAt = new Date();
    const message: Message = Object.freeze({
      ...input,
      usage: input.usage && Object.freeze({ ...input.usage }),
      id: uuidv7(),
      chatId,
      seq: record.messages.length + 1,
      createdAt,
    });
    record.messages.push(message);
    record.chat = Object.freeze({
      ...record.chat,
      messageCount: record.messages.length,
      updatedAt: createdAt,
      lastMessageAt: createdAt,
    });
    return message;
  }

  async listMessages(
    chatId: string,
    { limit, afterSeq = 0 }: { limit: number; afterSeq?: number },
  ): Promise<Message[]> {
    const messages = this.chats.get(chatId)?.messages ?? [];
    return messages.slice(afterSeq, afterSeq + limit);
  }

  async listRecentMessages(
    chatId: string,
    { limit, beforeSeq }: { limit: number; beforeSeq?: number },
  ): Promise<Message[]> {
    const messages = this.chats.get(chatId)?.messages ?? [];
    const end = Math.min(beforeSeq === undefined ? messages.length : beforeSeq - 1, messages.length);
    return messages.slice(Math.max(0, end - limit), end).reverse();
  }

  withChatLock<T>(chatId: string, work: () => Promise<T>): Promise<T> {
    return this.locks.runExclusive(chatId, work);
  }
}
