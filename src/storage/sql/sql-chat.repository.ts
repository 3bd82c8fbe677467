import { OnModuleDestroy } from '@nestjs/common';
import { Selectable, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatChanges, ChatKey, NewChat } from '../../chats/chat';
import { ChatNotFoundError } from '../../chats/chat-errors';
import { ChatRepository, ContextMessage } from '../../chats/chat.repository';
import { Message, MessageRole, MessageStatus, NewMessage } from '../../messages/message';
import { ChatLeaseLock, ChatLeaseLostError, HeldLease } from './chat-lease-lock';
import type { ChatsTable, MessagesTable } from './database-schema';
import type { SqlDatabase } from './sql-database';

const toDate = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));
const fromJson = <T>(value: T | string): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);

function toChat(row: Selectable<ChatsTable>): Chat {
  return {
    id: row.id,
    tenantId: row.tenant_id,
    title: row.title,
    systemPrompt: row.system_prompt,
    model: row.model,
    metadata: fromJson(row.metadata),
    messageCount: row.message_count,
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
    lastMessageAt: row.last_message_at === null ? null : toDate(row.last_message_at),
  };
}

type NewMessageRow = ReturnType<typeof messageRow>;

/** A new message's row, all but its seq. */
function messageRow(chatId: string, input: NewMessage) {
  return {
    id: uuidv7(),
    chat_id: chatId,
    role: input.role,
    content: input.content,
    status: input.status,
    in_reply_to: input.inReplyTo,
    model: input.model,
    usage: input.usage && JSON.stringify(input.usage),
    token_count: input.tokenCount,
    created_at: new Date().toISOString(),
  };
}

function toMessage(row: Selectable<MessagesTable>): Message {
  return {
    id: row.id,
    chatId: row.chat_id,
    seq: row.seq,
    role: row.role as MessageRole,
    content: row.content,
    status: row.status as MessageStatus,
    inReplyTo: row.in_reply_to,
    model: row.model,
    usage: row.usage === null ? null : fromJson(row.usage),
    tokenCount: row.token_count,
    createdAt: toDate(row.created_at),
  };
}

/**
 * Chats and messages in SQLite or PostgreSQL (the dialect differences live in {@link SqlDatabase}).
 * Every list is a keyset query on an index: chats by (tenant_id, id), messages by (chat_id, seq).
 * Every query matches the tenant: chats by their `tenant_id`, messages through their chat's.
 */
export class SqlChatRepository extends ChatRepository implements OnModuleDestroy {
  private readonly locks: ChatLeaseLock;

  constructor(
    private readonly database: SqlDatabase,
    leaseMs: number,
  ) {
    super();
    this.locks = new ChatLeaseLock(database.db, database.dialect, database.releaseSignals, leaseMs);
  }

  private get db() {
    return this.database.db;
  }

  /** The messages of the chat, only when the chat belongs to the key's tenant. */
  private messagesOf({ tenantId, chatId }: ChatKey) {
    // A subquery run once, not a join: SQLite would look the chat up again for every message.
    return this.db
      .selectFrom('messages')
      .where('messages.chat_id', '=', (eb) =>
        eb
          .selectFrom('chats')
          .select('chats.id')
          .where('chats.id', '=', chatId)
          .where('chats.tenant_id', '=', tenantId),
      );
  }

  async createChat(input: NewChat): Promise<Chat> {
    const now = new Date().toISOString();
    const row = await this.db
      .insertInto('chats')
      .values({
        id: uuidv7(),
        tenant_id: input.tenantId,
        title: input.title,
        system_prompt: input.systemPrompt,
        model: input.model,
        metadata: JSON.stringify(input.metadata),
        created_at: now,
        updated_at: now,
        last_message_at: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return toChat(row);
  }

  async findChat({ tenantId, chatId }: ChatKey): Promise<Chat | null> {
    const row = await this.db
      .selectFrom('chats')
      .selectAll()
      .where('id', '=', chatId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    return row ? toChat(row) : null;
  }

  async listChats(tenantId: string, { limit, beforeId }: { limit: number; beforeId?: string }): Promise<Chat[]> {
    let query = this.db
      .selectFrom('chats')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .orderBy('id', 'desc')
      .limit(limit);
    if (beforeId !== undefined) query = query.where('id', '<', beforeId);
    return (await query.execute()).map(toChat);
  }

  async updateChat({ tenantId, chatId }: ChatKey, changes: ChatChanges): Promise<Chat | null> {
    const row = await this.db
      .updateTable('chats')
      .set({
        ...(changes.title !== undefined && { title: changes.title }),
        ...(changes.systemPrompt !== undefined && { system_prompt: changes.systemPrompt }),
        ...(changes.metadata !== undefined && { metadata: JSON.stringify(changes.metadata) }),
        updated_at: new Date().toISOString(),
      })
      .where('id', '=', chatId)
      .where('tenant_id', '=', tenantId)
      .returningAll()
      .executeTakeFirst();
    return row ? toChat(row) : null;
  }

  async setTitleIfUntitled({ tenantId, chatId }: ChatKey, title: string): Promise<Chat | null> {
    const row = await this.db
      .updateTable('chats')
      .set({ title, updated_at: new Date().toISOString() })
      .where('id', '=', chatId)
      .where('tenant_id', '=', tenantId)
      .where('title', 'is', null)
      .returningAll()
      .executeTakeFirst();
    return row ? toChat(row) : null;
  }

  async deleteChat({ tenantId, chatId }: ChatKey): Promise<boolean> {
    // Its messages go with it (ON DELETE CASCADE).
    const { numDeletedRows } = await this.db
      .deleteFrom('chats')
      .where('id', '=', chatId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    return numDeletedRows > 0n;
  }

  async appendMessage(key: ChatKey, input: NewMessage): Promise<Message> {
    const lease = this.locks.heldLease(key.chatId);
    const row = await this.insertMessage(key, messageRow(key.chatId, input), lease);
    if (row) return toMessage(row);
    // Nothing was written: the chat is gone, or the lease expired and may belong to another instance.
    if (lease && (await this.findChat(key))) throw new ChatLeaseLostError(key.chatId);
    throw new ChatNotFoundError(key.chatId);
  }

  /**
   * Stores the message as its chat's next seq in one statement, only while the turn's lease (if
   * any) holds, and counts it on the chat. PostgreSQL counts first, in a data-modifying WITH: the
   * chat row's lock makes concurrent appends take their seq one after another. SQLite has one
   * writer at a time, and a trigger counts (migration 0006).
   */
  private insertMessage({ tenantId, chatId }: ChatKey, row: NewMessageRow, lease: HeldLease | undefined) {
    const values = Object.entries(row).map(([column, value]) => sql.val(value).as(column));
    const columns = ['seq' as const, ...(Object.keys(row) as (keyof NewMessageRow)[])];
    if (this.database.dialect.name === 'sqlite') {
      let chat = this.db.selectFrom('chats').where('id', '=', chatId).where('tenant_id', '=', tenantId);
      if (lease) chat = chat.where(this.locks.isStillHeld(lease));
      return this.db
        .insertInto('messages')
        .columns(columns)
        .expression(chat.select((eb) => [eb(eb.ref('message_count'), '+', 1).as('seq'), ...values]))
        .returningAll()
        .executeTakeFirst();
    }
    let counted = this.db
      .updateTable('chats')
      .set((eb) => ({
        message_count: eb('message_count', '+', 1),
        updated_at: row.created_at,
        last_message_at: row.created_at,
      }))
      .where('id', '=', chatId)
      .where('tenant_id', '=', tenantId);
    if (lease) counted = counted.where(this.locks.isStillHeld(lease));
    return this.db
      .with('counted', () => counted.returning('message_count'))
      .insertInto('messages')
      .columns(columns)
      .expression((eb) => eb.selectFrom('counted').select(['message_count as seq', ...values]))
      .returningAll()
      .executeTakeFirst();
  }

  async listMessages(key: ChatKey, { limit, afterSeq }: { limit: number; afterSeq?: number }): Promise<Message[]> {
    let query = this.messagesOf(key).selectAll('messages').orderBy('messages.seq').limit(limit);
    if (afterSeq !== undefined) query = query.where('messages.seq', '>', afterSeq);
    return (await query.execute()).map(toMessage);
  }

  async listRecentMessages(
    key: ChatKey,
    { limit, beforeSeq }: { limit: number; beforeSeq?: number },
  ): Promise<ContextMessage[]> {
    let query = this.messagesOf(key)
      .select(['messages.seq', 'messages.role', 'messages.content', 'messages.token_count'])
      .orderBy('messages.seq', 'desc')
      .limit(limit);
    if (beforeSeq !== undefined) query = query.where('messages.seq', '<', beforeSeq);
    return (await query.execute()).map((row) => ({
      seq: row.seq,
      role: row.role as MessageRole,
      content: row.content,
      tokenCount: row.token_count,
    }));
  }

  withChatLock<T>(chatId: string, work: () => Promise<T>): Promise<T> {
    return this.locks.run(chatId, work);
  }

  async onModuleDestroy(): Promise<void> {
    await this.database.close();
  }
}
