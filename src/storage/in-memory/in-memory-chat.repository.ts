import { Injectable } from '@nestjs/common';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatChanges, ChatKey, NewChat } from '../../chats/chat';
import { ChatNotFoundError } from '../../chats/chat-errors';
import { ChatLock, ChatRepository } from '../../chats/chat.repository';
import { Message, NewMessage } from '../../chats/message';
import type { StoredChatDigest } from '../../summaries/chat-digest.store';
import { KeyedMutex } from '../../common/concurrency/keyed-mutex';

interface ChatRecord {
  tenantId: string;
  chat: Chat;
  messages: Message[];
  /** Kept with the chat so that it goes with it (see InMemoryChatDigestStore). */
  digest: StoredChatDigest | null;
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
  /** Each tenant's chat ids in ascending order; UUIDv7 ids sort by creation. */
  private readonly orderByTenant = new Map<string, string[]>();
  private readonly locks = new KeyedMutex();

  /** The chat's record, only when it belongs to the key's tenant. */
  private recordOf({ tenantId, chatId }: ChatKey): ChatRecord | undefined {
    const record = this.chats.get(chatId);
    return record?.tenantId === tenantId ? record : undefined;
  }

  async createChat(input: NewChat): Promise<Chat> {
    const now = new Date();
    const chat: Chat = Object.freeze({
      id: uuidv7(),
      tenantId: input.tenantId,
      title: input.title,
      systemPrompt: input.systemPrompt,
      model: input.model,
      metadata: Object.freeze({ ...input.metadata }),
      messageCount: 0,
      createdAt: now,
      updatedAt: now,
      lastMessageAt: null,
    });
    this.chats.set(chat.id, { tenantId: input.tenantId, chat, messages: [], digest: null });
    let order = this.orderByTenant.get(input.tenantId);
    if (!order) this.orderByTenant.set(input.tenantId, (order = []));
    const last = order[order.length - 1];
    if (last === undefined || last < chat.id) order.push(chat.id);
    else order.splice(lowerBound(order, chat.id), 0, chat.id);
    return chat;
  }

  async findChat(key: ChatKey): Promise<Chat | null> {
    return this.recordOf(key)?.chat ?? null;
  }

  async listChats(tenantId: string, { limit, beforeId }: { limit: number; beforeId?: string }): Promise<Chat[]> {
    const order = this.orderByTenant.get(tenantId) ?? [];
    const start = beforeId === undefined ? order.length : lowerBound(order, beforeId);
    const page: Chat[] = [];
    for (let i = start - 1; i >= 0 && page.length < limit; i--) {
      page.push(this.chats.get(order[i])!.chat);
    }
    return page;
  }

  async updateChat(key: ChatKey, changes: ChatChanges): Promise<Chat | null> {
    const record = this.recordOf(key);
    if (!record) return null;
    record.chat = Object.freeze({
      ...record.chat,
      ...changes,
      metadata: Object.freeze({ ...(changes.metadata ?? record.chat.metadata) }),
      updatedAt: new Date(),
    });
    return record.chat;
  }

  async setTitleIfUntitled(key: ChatKey, title: string): Promise<Chat | null> {
    const record = this.recordOf(key);
    if (!record || record.chat.title !== null) return null;
    return this.updateChat(key, { title });
  }

  async deleteChat(key: ChatKey): Promise<boolean> {
    if (!this.recordOf(key)) return false;
    this.chats.delete(key.chatId);
    const order = this.orderByTenant.get(key.tenantId)!;
    order.splice(lowerBound(order, key.chatId), 1);
    if (order.length === 0) this.orderByTenant.delete(key.tenantId);
    return true;
  }

  async appendMessage(key: ChatKey, input: NewMessage): Promise<Message> {
    const record = this.recordOf(key);
    if (!record) throw new ChatNotFoundError(key.chatId);
    const createdAt = new Date();
    // Spelled out rather than spread: V8 gives every object built by `{ ...input, more }` a hidden
    // class of its own, which costs hundreds of bytes per stored message and makes every reader of
    // messages megamorphic. The chat's own id, not the caller's string: that one is often a slice of
    // a request URL, which it would keep alive.
    const message: Message = Object.freeze({
      id: uuidv7(),
      chatId: record.chat.id,
      seq: record.messages.length + 1,
      role: input.role,
      content: input.content,
      status: input.status,
      inReplyTo: input.inReplyTo,
      model: input.model,
      usage:
        input.usage &&
        Object.freeze({ promptTokens: input.usage.promptTokens, completionTokens: input.usage.completionTokens }),
      tokenCount: input.tokenCount,
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

  async listMessages(key: ChatKey, { limit, afterSeq = 0 }: { limit: number; afterSeq?: number }): Promise<Message[]> {
    const messages = this.recordOf(key)?.messages ?? [];
    return messages.slice(afterSeq, afterSeq + limit);
  }

  async listRecentMessages(
    key: ChatKey,
    { limit, beforeSeq }: { limit: number; beforeSeq?: number },
  ): Promise<Message[]> {
    const messages = this.recordOf(key)?.messages ?? [];
    const end = Math.min(beforeSeq === undefined ? messages.length : beforeSeq - 1, messages.length);
    return messages.slice(Math.max(0, end - limit), end).reverse();
  }

  withChatLock<T>(chatId: string, work: (lock: ChatLock) => Promise<T>): Promise<T> {
    // One process: holding the mutex is the whole lock, and it cannot be lost.
    return this.locks.runExclusive(chatId, () => work({ chatId, holder: 'this process' }));
  }

  loadDigest(key: ChatKey): StoredChatDigest | null {
    return this.recordOf(key)?.digest ?? null;
  }

  saveDigest(key: ChatKey, digest: StoredChatDigest): void {
    const record = this.recordOf(key);
    if (record && (record.digest?.lastSeq ?? -1) <= digest.lastSeq) record.digest = digest;
  }
}
