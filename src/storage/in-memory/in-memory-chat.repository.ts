import { Injectable } from '@nestjs/common';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatChanges, ChatKey, NewChat } from '../../chats/chat';
import { ChatNotFoundError, UnknownMessageIdError } from '../../chats/chat-errors';
import {
  AppendedMessage,
  BranchPage,
  ChatImport,
  ChatLock,
  ChatRepository,
  ContextMessage,
} from '../../chats/chat.repository';
import { Message, NewMessage } from '../../chats/message';
import type { StoredChatDigest } from '../../summaries/chat-digest.store';
import { KeyedMutex } from '../../common/concurrency/keyed-mutex';

/**
 * A chat's messages as lines: a line is a chain of first children (a message, its first child,
 * that one's first child …), so a chat that never branches is one line, and a branch is a few
 * slices of lines: the line it ends in, back to that line's first message, whose parent sits in
 * another line, and so on up to a root.
 */
interface ChatRecord {
  tenantId: string;
  chat: Chat;
  /** Every message, by seq. */
  messages: Message[];
  /** Each line's messages, by seq; until the chat branches, its one line is `messages` itself. */
  lines: Message[][];
  /** The line of each message, by seq; undefined while the chat has one line. */
  lineOf: number[] | undefined;
  current: Message | null;
  /** Kept with the chat so that it goes with it (see InMemoryChatDigestStore). */
  digest: StoredChatDigest | null;
}

/** Index of the first element whose key is >= `key` in an array sorted by that key. */
function lowerBound<T, K>(sorted: readonly T[], key: K, keyOf: (item: T) => K): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (keyOf(sorted[mid]) < key) low = mid + 1;
    else high = mid;
  }
  return low;
}

const itself = (id: string) => id;
const seqOf = (message: Message) => message.seq;
const lastMessageAtOf = (record: ChatRecord): Date | null => {
  const last = record.messages.at(-1);
  return last ? new Date(last.createdAt) : null;
};

/** What changes in the chats kept in memory, for an index kept of them (InMemoryMessageSearch). */
export interface InMemoryChatsListener {
  stored(tenantId: string, message: Message): void;
  deleted(tenantId: string, messages: readonly Message[]): void;
}

/**
 * A message as stored. Spelled out rather than spread: V8 gives every object built by
 * `{ ...input, more }` a hidden class of its own, which costs hundreds of bytes per stored message
 * and makes every reader of messages megamorphic. The chat's own id, not the caller's string: that
 * one is often a slice of a request URL, which it would keep alive.
 */
function frozenMessage(
  id: string,
  record: ChatRecord,
  input: NewMessage,
  parent: Message | null,
  createdAt: string,
): Message {
  const message = {
    id,
    chatId: record.chat.id,
    seq: record.messages.length + 1,
    role: input.role,
    content: input.content,
    status: input.status,
    inReplyTo: input.inReplyTo,
    parentId: parent === null ? null : parent.id,
    model: input.model,
    usage:
      input.usage &&
      Object.freeze({ promptTokens: input.usage.promptTokens, completionTokens: input.usage.completionTokens }),
    tokenCount: input.tokenCount,
    createdAt,
  };
  // Only failed replies carry a failure: every other message keeps the one shape, and no field more.
  return Object.freeze(
    input.failure ? Object.assign(message, { failure: Object.freeze({ ...input.failure }) }) : message,
  );
}

/** Where a message sits: its line, and its index in that line. */
interface Place {
  line: Message[];
  index: number;
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
  private listener: InMemoryChatsListener | undefined;

  /** The chat's record, only when it belongs to the key's tenant. */
  private recordOf({ tenantId, chatId }: ChatKey): ChatRecord | undefined {
    const record = this.chats.get(chatId);
    return record?.tenantId === tenantId ? record : undefined;
  }

  async createChat(input: NewChat): Promise<Chat> {
    const record = this.newRecord(input, new Date());
    this.add(record);
    return record.chat;
  }

  async importChat({ chat: input, createdAt, messages, currentMessageId }: ChatImport): Promise<Chat> {
    // Built whole before it is added: a failure part way leaves nothing behind.
    const record = this.newRecord(input, createdAt);
    for (const message of messages) {
      const parent = message.parentId === null ? null : this.messageOf(record, message.parentId);
      if (message.parentId !== null && !parent) throw new UnknownMessageIdError(message.parentId, 'parentId');
      const stored = frozenMessage(message.id, record, message, parent, message.createdAt);
      this.placeInLine(record, stored, parent);
    }
    record.current = currentMessageId === null ? null : this.messageOf(record, currentMessageId);
    record.chat = Object.freeze({
      ...record.chat,
      messageCount: record.messages.length,
      updatedAt: new Date(),
      lastMessageAt: lastMessageAtOf(record),
      currentMessageId: record.current?.id ?? null,
    });
    this.add(record);
    for (const message of record.messages) this.listener?.stored(record.tenantId, message);
    return record.chat;
  }

  private newRecord(input: NewChat, createdAt: Date): ChatRecord {
    const chat: Chat = Object.freeze({
      id: input.id ?? uuidv7(),
      tenantId: input.tenantId,
      title: input.title,
      systemPrompt: input.systemPrompt,
      model: input.model,
      metadata: Object.freeze({ ...input.metadata }),
      messageCount: 0,
      createdAt,
      updatedAt: createdAt,
      lastMessageAt: null,
      currentMessageId: null,
    });
    const messages: Message[] = [];
    return {
      tenantId: input.tenantId,
      chat,
      messages,
      lines: [messages],
      lineOf: undefined,
      current: null,
      digest: null,
    };
  }

  private add(record: ChatRecord): void {
    const { id, tenantId } = record.chat;
    if (this.chats.has(id)) throw new Error(`A chat ${id} is stored already`);
    this.chats.set(id, record);
    let order = this.orderByTenant.get(tenantId);
    if (!order) this.orderByTenant.set(tenantId, (order = []));
    const last = order[order.length - 1];
    if (last === undefined || last < id) order.push(id);
    else order.splice(lowerBound(order, id, itself), 0, id);
  }

  async findChat(key: ChatKey): Promise<Chat | null> {
    return this.recordOf(key)?.chat ?? null;
  }

  async listChats(tenantId: string, { limit, beforeId }: { limit: number; beforeId?: string }): Promise<Chat[]> {
    const order = this.orderByTenant.get(tenantId) ?? [];
    const start = beforeId === undefined ? order.length : lowerBound(order, beforeId, itself);
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
    const record = this.recordOf(key);
    if (!record) return false;
    this.chats.delete(key.chatId);
    this.listener?.deleted(key.tenantId, record.messages);
    const order = this.orderByTenant.get(key.tenantId)!;
    order.splice(lowerBound(order, key.chatId, itself), 1);
    if (order.length === 0) this.orderByTenant.delete(key.tenantId);
    return true;
  }

  async appendMessage(key: ChatKey, input: NewMessage): Promise<Message> {
    return this.append(key, input).message;
  }

  async appendMessageWithChat(key: ChatKey, input: NewMessage): Promise<AppendedMessage> {
    return this.append(key, input);
  }

  private append(key: ChatKey, input: NewMessage): AppendedMessage {
    const record = this.recordOf(key);
    if (!record) throw new ChatNotFoundError(key.chatId);
    let parent: Message | null;
    if (input.parentId === undefined) parent = record.current;
    else if (input.parentId === null) parent = null;
    else {
      parent = this.messageOf(record, input.parentId);
      if (!parent) throw new UnknownMessageIdError(input.parentId, 'parentId');
    }
    const createdAt = new Date();
    const message = frozenMessage(input.id ?? uuidv7(), record, input, parent, createdAt.toISOString());
    this.placeInLine(record, message, parent);
    record.current = message;
    this.listener?.stored(record.tenantId, message);
    record.chat = Object.freeze({
      ...record.chat,
      messageCount: record.messages.length,
      updatedAt: createdAt,
      lastMessageAt: createdAt,
      currentMessageId: message.id,
    });
    return { message, chat: record.chat };
  }

  /**
   * Stores the message by seq and in its line: a parent's first child continues the parent's
   * line, every other message (a root after the first, a second child) starts a line of its own.
   */
  private placeInLine(record: ChatRecord, message: Message, parent: Message | null): void {
    const isFirstMessage = record.messages.length === 0;
    const parentLine = parent && this.placeOf(record, parent).line;
    const continues = isFirstMessage || (parentLine !== null && parentLine[parentLine.length - 1] === parent);
    if (continues && record.lineOf === undefined) {
      record.messages.push(message); // the one line is `messages` itself
      return;
    }
    if (record.lineOf === undefined) {
      // The first branch: the one line gets an array of its own.
      record.lines[0] = record.messages.slice();
      record.lineOf = new Array<number>(record.messages.length).fill(0);
    }
    record.messages.push(message);
    if (continues) {
      parentLine!.push(message);
      record.lineOf.push(record.lineOf[parent!.seq - 1]);
    } else {
      record.lineOf.push(record.lines.length);
      record.lines.push([message]);
    }
  }

  async findMessage(key: ChatKey, messageId: string): Promise<Message | null> {
    const record = this.recordOf(key);
    return (record && this.messageOf(record, messageId)) ?? null;
  }

  /** The chat's message by id: ids are UUIDv7, made in this process in order, so they ascend with seq. */
  private messageOf(record: ChatRecord, id: string): Message | null {
    const found = record.messages[lowerBound(record.messages, id, (m) => m.id)];
    return found?.id === id ? found : null;
  }

  private placeOf(record: ChatRecord, message: Message): Place {
    if (record.lineOf === undefined) return { line: record.messages, index: message.seq - 1 };
    const line = record.lines[record.lineOf[message.seq - 1]];
    return { line, index: lowerBound(line, message.seq, seqOf) };
  }

  /**
   * The branch through `message`, newest first, as slices of lines: each is a line and the index
   * of the slice's newest message; the slice runs back to the line's first message. `visit`
   * returns false to stop.
   */
  private walkBranch(record: ChatRecord, message: Message, visit: (place: Place) => boolean): void {
    for (let at: Message | null = message; at !== null;) {
      const place = this.placeOf(record, at);
      if (!visit(place)) return;
      const { parentId } = place.line[0];
      at = parentId === null ? null : this.messageOf(record, parentId);
    }
  }

  async listMessages(key: ChatKey, { limit, afterSeq = 0 }: { limit: number; afterSeq?: number }): Promise<Message[]> {
    const messages = this.recordOf(key)?.messages ?? [];
    return messages.slice(afterSeq, afterSeq + limit);
  }

  async listBranch(
    key: ChatKey,
    { throughId, limit, afterSeq = 0 }: BranchPage & { afterSeq?: number },
  ): Promise<Message[]> {
    const record = this.recordOf(key);
    const through = record && this.messageOf(record, throughId);
    if (!through) return [];
    const slices: Place[] = [];
    this.walkBranch(record, through, (place) => {
      if (place.line[place.index].seq > afterSeq) slices.push(place);
      return place.line[0].seq > afterSeq;
    });
    const page: Message[] = [];
    for (let s = slices.length - 1; s >= 0 && page.length < limit; s--) {
      const { line, index } = slices[s];
      for (let i = lowerBound(line, afterSeq + 1, seqOf); i <= index && page.length < limit; i++) page.push(line[i]);
    }
    return page;
  }

  async listRecentMessages(key: ChatKey, { throughId, limit }: BranchPage): Promise<ContextMessage[]> {
    const record = this.recordOf(key);
    const through = record && this.messageOf(record, throughId);
    if (!through) return [];
    const page: Message[] = [];
    this.walkBranch(record, through, ({ line, index }) => {
      for (let i = index; i >= 0 && page.length < limit; i--) page.push(line[i]);
      return page.length < limit;
    });
    return page;
  }

  async switchBranch(key: ChatKey, messageId: string): Promise<Chat | null> {
    const record = this.recordOf(key);
    if (!record) return null;
    const message = this.messageOf(record, messageId);
    if (!message) throw new UnknownMessageIdError(messageId, 'currentMessageId');
    record.current = this.newestDescendant(record, message);
    record.chat = Object.freeze({ ...record.chat, currentMessageId: record.current.id, updatedAt: new Date() });
    return record.chat;
  }

  /**
   * The newest message of the subtree under `message`: the rest of its line, and every line that
   * starts below it. Lines are numbered as they start, after the line of their first message's
   * parent, so one pass in that order finds them all.
   */
  private newestDescendant(record: ChatRecord, message: Message): Message {
    const own = this.placeOf(record, message).line;
    let newest = own[own.length - 1];
    if (record.lineOf === undefined) return newest;
    const lineOf = record.lineOf;
    const inSubtree = new Set<number>([lineOf[message.seq - 1]]);
    for (let l = 0; l < record.lines.length; l++) {
      const line = record.lines[l];
      const { parentId } = line[0];
      const parent = parentId === null ? null : this.messageOf(record, parentId);
      if (parent === null || inSubtree.has(l)) continue;
      const parentLine = lineOf[parent.seq - 1];
      const below = parentLine === lineOf[message.seq - 1] ? parent.seq >= message.seq : inSubtree.has(parentLine);
      if (!below) continue;
      inSubtree.add(l);
      const last = line[line.length - 1];
      if (last.seq > newest.seq) newest = last;
    }
    return newest;
  }

  /** Tells `listener` of every message stored and every chat deleted from now on. */
  listen(listener: InMemoryChatsListener): void {
    this.listener = listener;
  }

  /** Every message of the tenant's chats, oldest chat first. */
  *messagesOfTenant(tenantId: string): Generator<Message> {
    for (const chatId of this.orderByTenant.get(tenantId) ?? []) yield* this.chats.get(chatId)!.messages;
  }

  /** The tenant's message and its chat, by id; null when either is gone. */
  storedMessage(tenantId: string, chatId: string, messageId: string): { chat: Chat; message: Message } | null {
    const record = this.recordOf({ tenantId, chatId });
    const message = record && this.messageOf(record, messageId);
    return message ? { chat: record.chat, message } : null;
  }

  withChatLock<T>(chatId: string, work: (lock: ChatLock) => Promise<T>, signal?: AbortSignal): Promise<T> {
    // One process: holding the mutex is the whole lock, and it cannot be lost.
    return this.locks.runExclusive(chatId, () => work({ chatId, holder: 'this process' }), signal);
  }

  loadDigest(key: ChatKey): StoredChatDigest | null {
    return this.recordOf(key)?.digest ?? null;
  }

  saveDigest(key: ChatKey, digest: StoredChatDigest): void {
    const record = this.recordOf(key);
    if (record && (record.digest?.lastSeq ?? -1) <= digest.lastSeq) record.digest = digest;
  }
}
