import { OnModuleDestroy } from '@nestjs/common';
import { Selectable, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatChanges, ChatKey, NewChat } from '../../chats/chat';
import { ChatNotFoundError } from '../../chats/chat-errors';
import { ChatLock, ChatRepository, ContextMessage } from '../../chats/chat.repository';
import { Message, MessageRole, MessageStatus, NewMessage } from '../../chats/message';
import { ChatLeaseLock, ChatLeaseLostError } from './chat-lease-lock';
import type { ChatsTable, MessagesTable } from './database-schema';
import { prepareQuery } from './prepared-query';
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

/** A new message's columns, all but its seq, in the order the insert names them. */
const NEW_MESSAGE_COLUMNS = [
  'id',
  'chat_id',
  'role',
  'content',
  'status',
  'in_reply_to',
  'model',
  'usage',
  'token_count',
  'created_at',
] as const satisfies readonly (keyof NewMessageRow)[];

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

/** A page of a chat's messages. */
type Page = ChatKey & { limit: number };

/** What a message insert is given: its row, its chat's tenant and the lease it writes under. */
type InsertArgs = NewMessageRow & { tenantId: string; holder: string };

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
  /** What every turn runs, built once (see prepareQuery); the rest is built at each call. */
  private readonly statements;

  constructor(
    private readonly database: SqlDatabase,
    leaseMs: number,
  ) {
    super();
    this.locks = new ChatLeaseLock(database.db, database.dialect, database.releaseSignals, leaseMs);
    const db = database.db;
    this.statements = {
      findChat: prepareQuery(db, ({ chatId, tenantId }: ChatKey) =>
        db.selectFrom('chats').selectAll().where('id', '=', chatId).where('tenant_id', '=', tenantId),
      ),
      insertMessage: prepareQuery(db, (args: InsertArgs) => this.insertMessage(args, { underLease: false })),
      insertMessageUnderLease: prepareQuery(db, (args: InsertArgs) => this.insertMessage(args, { underLease: true })),
      listMessages: prepareQuery(db, (page: Page) =>
        this.messagesOf(page).selectAll('messages').orderBy('messages.seq').limit(page.limit),
      ),
      listMessagesAfter: prepareQuery(db, (page: Page & { afterSeq: number }) =>
        this.messagesOf(page)
          .selectAll('messages')
          .where('messages.seq', '>', page.afterSeq)
          .orderBy('messages.seq')
          .limit(page.limit),
      ),
      listRecent: prepareQuery(db, (page: Page) => this.recentOf(page).limit(page.limit)),
      listRecentBefore: prepareQuery(db, (page: Page & { beforeSeq: number }) =>
        this.recentOf(page).where('messages.seq', '<', page.beforeSeq).limit(page.limit),
      ),
    };
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
    const {
      rows: [row],
    } = await this.statements.findChat({ tenantId, chatId });
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

  async appendMessage(key: ChatKey, input: NewMessage, lock?: ChatLock): Promise<Message> {
    const args: InsertArgs = {
      ...messageRow(key.chatId, input),
      tenantId: key.tenantId,
      holder: lock?.holder ?? '',
    };
    const insert = lock ? this.statements.insertMessageUnderLease : this.statements.insertMessage;
    const {
      rows: [row],
    } = await insert(args);
    if (row) return toMessage(row);
    // Nothing was written: the chat is gone, or the lease expired and may belong to another instance.
    if (lock && (await this.findChat(key))) throw new ChatLeaseLostError(key.chatId);
    throw new ChatNotFoundError(key.chatId);
  }

  /**
   * Stores the message as its chat's next seq in one statement, only while the turn's lease (if
   * any) holds, and counts it on the chat. PostgreSQL counts first, in a data-modifying WITH: the
   * chat row's lock makes concurrent appends take their seq one after another. SQLite has one
   * writer at a time, and a trigger counts (migration 0006).
   */
  private insertMessage(args: InsertArgs, { underLease }: { underLease: boolean }) {
    const { chat_id: chatId, tenantId } = args;
    const lease = () => this.locks.isStillHeld({ chatId, holder: args.holder });
    const values = NEW_MESSAGE_COLUMNS.map((column) => sql.val(args[column]).as(column));
    const columns = ['seq' as const, ...NEW_MESSAGE_COLUMNS];
    if (this.database.dialect.name === 'sqlite') {
      let chat = this.db.selectFrom('chats').where('id', '=', chatId).where('tenant_id', '=', tenantId);
      if (underLease) chat = chat.where(lease());
      return this.db
        .insertInto('messages')
        .columns(columns)
        .expression(chat.select((eb) => [eb(eb.ref('message_count'), '+', 1).as('seq'), ...values]))
        .returningAll();
    }
    let counted = this.db
      .updateTable('chats')
      .set((eb) => ({
        message_count: eb('message_count', '+', 1),
        updated_at: args.created_at,
        last_message_at: args.created_at,
      }))
      .where('id', '=', chatId)
      .where('tenant_id', '=', tenantId);
    if (underLease) counted = counted.where(lease());
    return this.db
      .with('counted', () => counted.returning('message_count'))
      .insertInto('messages')
      .columns(columns)
      .expression((eb) => eb.selectFrom('counted').select(['message_count as seq', ...values]))
      .returningAll();
  }

  async listMessages(key: ChatKey, { limit, afterSeq }: { limit: number; afterSeq?: number }): Promise<Message[]> {
    const { tenantId, chatId } = key;
    const { rows } =
      afterSeq === undefined
        ? await this.statements.listMessages({ tenantId, chatId, limit })
        : await this.statements.listMessagesAfter({ tenantId, chatId, limit, afterSeq });
    return rows.map(toMessage);
  }

  async listRecentMessages(
    key: ChatKey,
    { limit, beforeSeq }: { limit: number; beforeSeq?: number },
  ): Promise<ContextMessage[]> {
    const { tenantId, chatId } = key;
    const { rows } =
      beforeSeq === undefined
        ? await this.statements.listRecent({ tenantId, chatId, limit })
        : await this.statements.listRecentBefore({ tenantId, chatId, limit, beforeSeq });
    return rows.map((row) => ({
      seq: row.seq,
      role: row.role as MessageRole,
      content: row.content,
      tokenCount: row.token_count,
    }));
  }

  /** What a context needs of the chat's messages, newest first. */
  private recentOf(key: ChatKey) {
    return this.messagesOf(key)
      .select(['messages.seq', 'messages.role', 'messages.content', 'messages.token_count'])
      .orderBy('messages.seq', 'desc');
  }

  withChatLock<T>(chatId: string, work: (lock: ChatLock) => Promise<T>): Promise<T> {
    return this.locks.run(chatId, work);
  }

  async onModuleDestroy(): Promise<void> {
    await this.database.close();
  }
}
