import { Logger, OnModuleDestroy } from '@nestjs/common';
import { CompiledQuery, Insertable, RawBuilder, Selectable, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatChanges, ChatKey, NewChat } from '../../chats/chat';
import { ChatLeaseLostError, ChatNotFoundError, UnknownMessageIdError } from '../../chats/chat-errors';
import {
  AppendedMessage,
  BranchPage,
  ChatImport,
  ChatLock,
  ChatRepository,
  ContextMessage,
  ImportedMessage,
} from '../../chats/chat.repository';
import { Message, MessageRole, MessageStatus, NewMessage } from '../../chats/message';
import { ChatLeaseLock } from './chat-lease-lock';
import type { ChatsTable, MessagesTable } from './database-schema';
import { PreparedQuery, prepareQuery } from './prepared-query';
import type { SqlDatabase } from './sql-database';

/** Imports smaller than this never analyze the table: the planner's guess serves small tables well. */
const ANALYZE_AFTER_IMPORT_MIN = 1_000;
const logger = new Logger('SqlChatRepository');

const toDate = (value: Date | string): Date => (value instanceof Date ? value : new Date(value));
const toIsoTime = (value: Date | string): string => toDate(value).toISOString();
const fromJson = <T>(value: T | string): T => (typeof value === 'string' ? (JSON.parse(value) as T) : value);

/**
 * A chat's columns, named: a column a migration adds must not change what a prepared statement
 * returns (see pg-driver.ts). `current_line_id` only serves appends, inside their statements.
 */
const CHAT_COLUMNS = [
  'id',
  'tenant_id',
  'title',
  'system_prompt',
  'model',
  'metadata',
  'message_count',
  'created_at',
  'updated_at',
  'last_message_at',
  'current_message_id',
] as const satisfies readonly (keyof ChatsTable)[];

function toChat(row: Pick<Selectable<ChatsTable>, (typeof CHAT_COLUMNS)[number]>): Chat {
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
    currentMessageId: row.current_message_id,
  };
}

/**
 * The chat's own columns an append returns with its message for appendMessageWithChat, named apart
 * from the message's. Its count, times and current message follow from the message itself.
 */
const APPENDED_CHAT_COLUMNS = [
  'title',
  'system_prompt',
  'model',
  'metadata',
  'created_at',
] as const satisfies readonly (keyof ChatsTable)[];
type AppendedChatColumn = (typeof APPENDED_CHAT_COLUMNS)[number];

/** A message row as an append returns it with its chat's columns. */
type AppendedRow = Selectable<MessagesTable> & {
  [C in AppendedChatColumn as `chat_${C}`]: Selectable<ChatsTable>[C];
};

/**
 * The chat's columns as an insert's RETURNING reads them, each by the chat's primary key: SQLite
 * lets a RETURNING name no other table. Its statement's own update of the chat (PostgreSQL's WITH,
 * SQLite's trigger) changes none of them.
 */
const appendedChatReturning = sql.raw(
  APPENDED_CHAT_COLUMNS.map((c) => `, (select c.${c} from chats c where c.id = messages.chat_id) as chat_${c}`).join(
    '',
  ),
);

/**
 * The chat as an append left it: the columns it returned, and the count, times and current message
 * that every append sets from its message (see insertMessage).
 */
function chatAfterAppend(row: AppendedRow, tenantId: string): Chat {
  return {
    id: row.chat_id,
    tenantId,
    title: row.chat_title,
    systemPrompt: row.chat_system_prompt,
    model: row.chat_model,
    metadata: fromJson(row.chat_metadata),
    messageCount: row.seq,
    createdAt: toDate(row.chat_created_at),
    updatedAt: new Date(row.created_at),
    lastMessageAt: new Date(row.created_at),
    currentMessageId: row.id,
  };
}

/** A new message's row, all but its seq, parent and line. */
function messageRow(chatId: string, input: NewMessage) {
  return {
    id: input.id ?? uuidv7(),
    chat_id: chatId,
    role: input.role,
    content: input.content,
    status: input.status,
    in_reply_to: input.inReplyTo,
    model: input.model,
    usage: input.usage && JSON.stringify(input.usage),
    token_count: input.tokenCount,
    created_at: new Date().toISOString(),
    failure: input.failure === undefined ? null : JSON.stringify(input.failure),
  };
}

/** The most rows one insert of an import writes: 14 parameters each stays far below either database's limit. */
const MAX_IMPORT_BATCH = 512;

/**
 * How many of `remaining` rows the next insert writes: a power of two, so imports of any size run
 * a handful of distinct statements, which both databases' statement caches then keep.
 */
const importBatchSize = (remaining: number) => Math.min(MAX_IMPORT_BATCH, 2 ** Math.floor(Math.log2(remaining)));

/**
 * The parameters of an imported chat's message rows (MESSAGE_COLUMNS, in order), and each message's line: a
 * parent's first child continues the parent's line; any other child, and every root, starts a
 * line named by its own id.
 */
function importedRows(chatId: string, messages: readonly ImportedMessage[]) {
  const lineOf = new Map<string, string>();
  const hasChild = new Set<string>();
  const rows = messages.map((message, index) => {
    let lineId = message.id;
    if (message.parentId !== null) {
      const parentLine = lineOf.get(message.parentId);
      if (parentLine === undefined) throw new UnknownMessageIdError(message.parentId, 'parentId');
      if (!hasChild.has(message.parentId)) lineId = parentLine;
      hasChild.add(message.parentId);
    }
    lineOf.set(message.id, lineId);
    return [
      message.id,
      chatId,
      index + 1,
      message.role,
      message.content,
      message.status,
      message.inReplyTo,
      message.parentId,
      lineId,
      message.model,
      message.usage && JSON.stringify(message.usage),
      message.tokenCount,
      message.createdAt,
      message.failure === undefined ? null : JSON.stringify(message.failure),
    ];
  });
  return { rows, lineOf };
}

/** What a message insert is given: its row, the parent it names, its chat's tenant and the lease it writes under. */
type InsertArgs = ReturnType<typeof messageRow> & { parent_id: string; tenantId: string; holder: string };

/** Whom a new message follows: the chat's current message, a named message, or none (a new root). */
type ParentChoice = 'current' | 'named' | 'root';

/** Message inserts, one for each kind of parent. */
type Inserts<R> = Record<ParentChoice, PreparedQuery<InsertArgs, R>>;

/** A message insert's lease: none, checked, or checked and released with it (PostgreSQL). */
type LeaseUse = 'none' | 'held' | 'released';

/** A page of a chat's messages. */
type Page = ChatKey & { limit: number };

/** Where a message sits: its line, and the first message of that line (whose parent is in another line). */
interface LineSlice {
  seq: number;
  line_id: string;
  head_seq: number;
  fork: string | null;
}

export function toMessage(row: Selectable<MessagesTable>): Message {
  const message = {
    id: row.id,
    chatId: row.chat_id,
    seq: row.seq,
    role: row.role as MessageRole,
    content: row.content,
    status: row.status as MessageStatus,
    inReplyTo: row.in_reply_to,
    parentId: row.parent_id,
    model: row.model,
    usage: row.usage === null ? null : fromJson(row.usage),
    tokenCount: row.token_count,
    createdAt: toIsoTime(row.created_at),
  };
  // Only failed replies carry a failure (as in memory).
  return row.failure === null ? message : Object.assign(message, { failure: fromJson(row.failure) });
}

/**
 * A message's columns, named: PostgreSQL also keeps each message's search vector (migration
 * 0009), which no read of messages needs to carry.
 */
export const MESSAGE_COLUMNS = [
  'id',
  'chat_id',
  'seq',
  'role',
  'content',
  'status',
  'in_reply_to',
  'parent_id',
  'line_id',
  'model',
  'usage',
  'token_count',
  'created_at',
  'failure',
] as const satisfies readonly (keyof MessagesTable)[];

/** The columns as SQL, qualified by `table` when given. */
export const messageColumnsOf = (table?: string) =>
  sql.raw(MESSAGE_COLUMNS.map((c) => (table ? `${table}.${c}` : c)).join(', '));
const MESSAGE_FIELDS = MESSAGE_COLUMNS.map((c) => `messages.${c}` as const);

type ContextRow = Pick<Selectable<MessagesTable>, 'id' | 'parent_id' | 'seq' | 'role' | 'content' | 'token_count'>;

const toContextMessage = (row: ContextRow): ContextMessage => ({
  id: row.id,
  parentId: row.parent_id,
  seq: row.seq,
  role: row.role as MessageRole,
  content: row.content,
  tokenCount: row.token_count,
});

/**
 * Chats and messages in SQLite or PostgreSQL (the dialect differences live in {@link SqlDatabase}).
 * Every list is a keyset query on an index: chats by (tenant_id, id), messages by (chat_id, seq),
 * branches by (line_id, seq). Every query matches the tenant: chats by their `tenant_id`, messages
 * through their chat's.
 *
 * Branches: a *line* is a chain of first children (a message, its first child, that one's first
 * child …), named by its first message's id. A message continues its parent's line when it is
 * the parent's first child, and starts a line of its own otherwise (a second reply, an edit, a new
 * root). A chat that never branches is one line, and a branch is read as one index range per line
 * it crosses, whatever else the chat holds. The chat row keeps its current message and that
 * message's line, which is always a leaf's: an append that follows it continues the line without
 * reading any message.
 */
export class SqlChatRepository extends ChatRepository implements OnModuleDestroy {
  private readonly locks: ChatLeaseLock;
  /** What every turn runs, built once (see prepareQuery); the rest is built at each call. */
  private readonly statements;
  private readonly importInserts = new Map<number, string>();

  constructor(
    private readonly database: SqlDatabase,
    leaseMs: number,
  ) {
    super();
    this.locks = new ChatLeaseLock(database.db, database.dialect, database.releaseSignals, leaseMs);
    const db = database.db;
    // A message named by id is read by its primary key alone, in a materialized WITH, and its chat
    // checked after. Given both conditions, PostgreSQL planned unanalyzed tables with the chat's
    // (chat_id, seq) index and read the whole chat: 5.6 ms a turn in a 20,000-message chat.
    this.statements = {
      findChat: prepareQuery(db, ({ chatId, tenantId }: ChatKey) =>
        db.selectFrom('chats').select(CHAT_COLUMNS).where('id', '=', chatId).where('tenant_id', '=', tenantId),
      ),
      insertMessage: this.prepareInserts('none'),
      insertMessageUnderLease: this.prepareInserts('held'),
      insertMessageReleasingLease: this.prepareInserts('released'),
      insertMessageWithChat: this.prepareInserts('held', true) as Inserts<AppendedRow>,
      findMessage: prepareQuery(
        db,
        (args: ChatKey & { messageId: string }) => sql<Selectable<MessagesTable>>`
          with found as materialized (select ${messageColumnsOf()} from messages where id = ${args.messageId})
          select ${messageColumnsOf()} from found where chat_id = ${this.chatIdOf(args)}`,
      ),
      listMessages: prepareQuery(db, (page: Page) =>
        this.messagesOf(page).select(MESSAGE_FIELDS).orderBy('messages.seq').limit(page.limit),
      ),
      listMessagesAfter: prepareQuery(db, (page: Page & { afterSeq: number }) =>
        this.messagesOf(page)
          .select(MESSAGE_FIELDS)
          .where('messages.seq', '>', page.afterSeq)
          .orderBy('messages.seq')
          .limit(page.limit),
      ),
      lineSliceOf: prepareQuery(
        db,
        (args: ChatKey & { messageId: string }) => sql<LineSlice>`
          with m as materialized (select seq, line_id, chat_id from messages where id = ${args.messageId})
          select m.seq, m.line_id, head.seq as head_seq, head.parent_id as fork
          from m join messages head on head.id = m.line_id
          where m.chat_id = ${this.chatIdOf(args)}`,
      ),
      lineAscending: prepareQuery(
        db,
        // A line id is the id of its first message, so a line is one chat's: a condition on the
        // chat would only offer the planner the chat's (chat_id, seq) index, the wrong one.
        (args: { lineId: string; afterSeq: number; throughSeq: number; limit: number }) =>
          sql<Selectable<MessagesTable>>`
          select ${messageColumnsOf()} from messages
          where line_id = ${args.lineId} and seq > ${args.afterSeq} and seq <= ${args.throughSeq}
          order by seq limit ${args.limit}`,
      ),
      lineNewestFirst: prepareQuery(
        db,
        (args: ChatKey & { throughId: string; limit: number }) => sql<ContextRow>`
          with through as materialized (select line_id, seq, chat_id from messages where id = ${args.throughId})
          select m.id, m.parent_id, m.seq, m.role, m.content, m.token_count
          from through join messages m on m.line_id = through.line_id and m.seq <= through.seq
          where through.chat_id = ${this.chatIdOf(args)}
          order by m.seq desc limit ${args.limit}`,
      ),
    };
  }

  private get db() {
    return this.database.db;
  }

  /** The chat's id, only when the chat belongs to the key's tenant: a subquery. */
  private chatIdOf({ tenantId, chatId }: ChatKey): RawBuilder<string> {
    return sql<string>`(select id from chats where id = ${chatId} and tenant_id = ${tenantId})`;
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
        id: input.id ?? uuidv7(),
        tenant_id: input.tenantId,
        title: input.title,
        system_prompt: input.systemPrompt,
        model: input.model,
        metadata: JSON.stringify(input.metadata),
        created_at: now,
        updated_at: now,
        last_message_at: null,
        current_message_id: null,
        current_line_id: null,
      })
      .returning(CHAT_COLUMNS)
      .executeTakeFirstOrThrow();
    return toChat(row);
  }

  /**
   * One transaction: the chat, its messages in a few multi-row inserts, then the chat's count and
   * current message (which SQLite's trigger set row by row meanwhile).
   */
  async importChat({ chat, createdAt, messages, currentMessageId }: ChatImport): Promise<Chat> {
    const chatId = chat.id ?? uuidv7();
    const { rows, lineOf } = importedRows(chatId, messages);
    const importedAt = new Date().toISOString();
    const imported = await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('chats')
        .values({
          id: chatId,
          tenant_id: chat.tenantId,
          title: chat.title,
          system_prompt: chat.systemPrompt,
          model: chat.model,
          metadata: JSON.stringify(chat.metadata),
          created_at: createdAt.toISOString(),
          updated_at: importedAt,
          last_message_at: null,
          current_message_id: null,
          current_line_id: null,
        })
        .execute();
      for (let at = 0; at < rows.length;) {
        const size = importBatchSize(rows.length - at);
        await trx.executeQuery(CompiledQuery.raw(this.importInsert(size), rows.slice(at, at + size).flat()));
        at += size;
      }
      const row = await trx
        .updateTable('chats')
        .set({
          message_count: rows.length,
          updated_at: importedAt,
          last_message_at: messages.at(-1)?.createdAt ?? null,
          current_message_id: currentMessageId,
          current_line_id: currentMessageId === null ? null : lineOf.get(currentMessageId)!,
        })
        .where('id', '=', chatId)
        .returning(CHAT_COLUMNS)
        .executeTakeFirstOrThrow();
      return toChat(row);
    });
    if (this.database.dialect.name === 'postgres') await this.analyzeAfterImport(messages.length);
    return imported;
  }

  /**
   * After an import that grows the messages table by a tenth or more, PostgreSQL's statistics of it
   * and of the chats are brought up to date at once. Autovacuum does so only a minute or more later;
   * until then the planner takes the tables for their old sizes, and a search went through each
   * chat's index rather than the full-text one (in a tenant of 100,000 imported messages, 2.8× its
   * time in one of 1,000).
   */
  private async analyzeAfterImport(count: number): Promise<void> {
    try {
      const { rows } = await sql<{ rows: number }>`
        select reltuples::float8 as rows from pg_class where oid = 'messages'::regclass`.execute(this.db);
      // reltuples is -1 for a table never analyzed.
      if (count < Math.max(ANALYZE_AFTER_IMPORT_MIN, 0.1 * rows[0].rows)) return;
      await sql`analyze chats, messages`.execute(this.db);
    } catch (error) {
      // The chat is stored; without fresh statistics only its searches are slower, until autovacuum.
      logger.warn(`Could not analyze the chats and messages after an import: ${(error as Error).message}`);
    }
  }

  /**
   * The text of an insert of `size` imported messages, compiled once per size: through the query
   * builder, the thousands of parameters of each took as much CPU as storing them.
   */
  private importInsert(size: number): string {
    let text = this.importInserts.get(size);
    if (text === undefined) {
      const row = Object.fromEntries(MESSAGE_COLUMNS.map((column) => [column, null])) as Insertable<MessagesTable>;
      text = this.db.insertInto('messages').values(Array<typeof row>(size).fill(row)).compile().sql;
      this.importInserts.set(size, text);
    }
    return text;
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
      .select(CHAT_COLUMNS)
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
      .returning(CHAT_COLUMNS)
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
      .returning(CHAT_COLUMNS)
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

  async appendMessage(
    key: ChatKey,
    input: NewMessage,
    lock?: ChatLock,
    { lastUnderLock = false } = {},
  ): Promise<Message> {
    // PostgreSQL releases the lease in the insert's statement; SQLite, which has no writes in a
    // WITH, right after it.
    const releasing = lock !== undefined && lastUnderLock;
    const inOneStatement = releasing && this.database.dialect.name === 'postgres';
    const row = await this.insert(
      key,
      input,
      lock,
      inOneStatement
        ? this.statements.insertMessageReleasingLease
        : lock
          ? this.statements.insertMessageUnderLease
          : this.statements.insertMessage,
    );
    if (inOneStatement) {
      // Not awaited: the turn then ends in this pass of the event loop, before a stop meant for
      // another instance's next turn of the chat could find it here.
      const { lease_awaited: awaited } = row as { lease_awaited?: boolean | null };
      void this.locks.releasedBy(lock, { awaited: Boolean(awaited) });
    } else if (releasing) {
      await this.locks.release(lock);
    }
    return toMessage(row);
  }

  async appendMessageWithChat(key: ChatKey, input: NewMessage, lock: ChatLock): Promise<AppendedMessage> {
    const row = await this.insert(key, input, lock, this.statements.insertMessageWithChat);
    return { message: toMessage(row), chat: chatAfterAppend(row, key.tenantId) };
  }

  /** Stores the message with the insert of its kind; throws as appendMessage says when it wrote nothing. */
  private async insert<R>(
    key: ChatKey,
    input: NewMessage,
    lock: ChatLock | undefined,
    inserts: Inserts<R>,
  ): Promise<R> {
    const args: InsertArgs = {
      ...messageRow(key.chatId, input),
      parent_id: input.parentId ?? '',
      tenantId: key.tenantId,
      holder: lock?.holder ?? '',
    };
    const parent: ParentChoice = input.parentId === undefined ? 'current' : input.parentId === null ? 'root' : 'named';
    const {
      rows: [row],
    } = await inserts[parent](args);
    if (!row) {
      // Nothing was written: the chat is gone, the parent is not its message, or the lease expired.
      if (!(await this.findChat(key))) throw new ChatNotFoundError(key.chatId);
      if (parent === 'named' && !(await this.findMessage(key, args.parent_id))) {
        throw new UnknownMessageIdError(args.parent_id, 'parentId');
      }
      throw new ChatLeaseLostError(key.chatId);
    }
    return row;
  }

  /**
   * The three kinds of message insert (see insertMessage), built once, with the lease as given,
   * returning the chat's columns too when `withChat`.
   */
  private prepareInserts(lease: LeaseUse, withChat = false) {
    const prepare = (parent: ParentChoice) =>
      prepareQuery(this.db, (args: InsertArgs) => this.insertMessage(args, parent, lease, withChat));
    return { current: prepare('current'), named: prepare('named'), root: prepare('root') };
  }

  /**
   * Stores the message as its chat's next seq in one statement, only while the turn's lease (if
   * any) holds, makes it the chat's current message and counts it on the chat. PostgreSQL counts
   * first, in a data-modifying WITH that reads the chat row `for update`, so concurrent appends
   * take their seq and parent one after another. SQLite has one writer at a time, and a trigger
   * counts (migrations 0006 and 0007). `released`: PostgreSQL also deletes the lease in the same
   * statement (whose parts all see the lease as it was before), and says whether it was awaited.
   * `withChat`: it returns the chat's columns too (appendedChatReturning).
   */
  private insertMessage(args: InsertArgs, parent: ParentChoice, lease: LeaseUse, withChat: boolean) {
    // Arguments are read only where the statement places them (see prepareQuery).
    const { id, chat_id: chatId, tenantId } = args;
    const held =
      lease !== 'none'
        ? sql`and exists (select 1 from chat_leases l where l.chat_id = ${chatId} and l.owner = ${args.holder} and l.expires_at > ${this.database.dialect.nowMs})`
        : sql``;
    const values = sql.join([
      sql`${id}`,
      sql`${chatId}`,
      sql`${args.role}`,
      sql`${args.content}`,
      sql`${args.status}`,
      sql`${args.in_reply_to}`,
      sql`${args.model}`,
      sql`${args.usage}`,
      sql`${args.token_count}`,
      sql`${args.created_at}`,
      sql`${args.failure}`,
    ]);
    const returning = withChat ? sql`${messageColumnsOf()}${appendedChatReturning}` : messageColumnsOf();
    const insertInto = sql`insert into messages (seq, id, chat_id, role, content, status, in_reply_to, model, usage, token_count, created_at, failure, parent_id, line_id)`;
    // A parent's first child continues its line; any other child starts one.
    const lineAfter = (parentAlias: RawBuilder<unknown>) =>
      sql`case when exists (select 1 from messages child where child.parent_id = ${parentAlias}.id) then ${id} else ${parentAlias}.line_id end`;
    if (this.database.dialect.name === 'sqlite') {
      const chat = sql`chats.id = ${chatId} and chats.tenant_id = ${tenantId} ${held}`;
      if (parent === 'current') {
        return sql<Selectable<MessagesTable>>`${insertInto}
          select chats.message_count + 1, ${values}, chats.current_message_id, coalesce(chats.current_line_id, ${id})
          from chats where ${chat} returning ${returning}`;
      }
      if (parent === 'root') {
        return sql<Selectable<MessagesTable>>`${insertInto}
          select chats.message_count + 1, ${values}, null, ${id} from chats where ${chat} returning ${returning}`;
      }
      return sql<Selectable<MessagesTable>>`${insertInto}
        select chats.message_count + 1, ${values}, parent.id, ${lineAfter(sql.raw('parent'))}
        from chats join messages parent on parent.id = ${args.parent_id} and parent.chat_id = chats.id
        where ${chat} returning ${returning}`;
    }
    const counted = sql`message_count = chats.message_count + 1, updated_at = ${args.created_at}, last_message_at = ${args.created_at}, current_message_id = ${id}`;
    const chat = sql`chats.id = ${chatId} and chats.tenant_id = ${tenantId} ${held}`;
    let steps: RawBuilder<unknown>;
    let insert: RawBuilder<unknown>;
    if (parent === 'current') {
      steps = sql`counted as (
          update chats set ${counted}, current_line_id = coalesce(previous.current_line_id, ${id})
          from (select id, current_message_id, current_line_id from chats where id = ${chatId} for update) previous
          where chats.id = previous.id and ${chat}
          returning chats.message_count as seq, previous.current_message_id as parent_id, chats.current_line_id as line_id
        )`;
      insert = sql`${insertInto} select seq, ${values}, parent_id, line_id from counted returning ${returning}`;
    } else if (parent === 'root') {
      steps = sql`counted as (
          update chats set ${counted}, current_line_id = ${id} where ${chat} returning chats.message_count as seq
        )`;
      insert = sql`${insertInto} select seq, ${values}, null, ${id} from counted returning ${returning}`;
    } else {
      // The parent by its primary key alone, as in the constructor's statements.
      steps = sql`parent as materialized (
          select parent.id, parent.chat_id, ${lineAfter(sql.raw('parent'))} as line_id
          from messages parent where parent.id = ${args.parent_id}
        ), counted as (
          update chats set ${counted}, current_line_id = parent.line_id from parent
          where parent.chat_id = ${chatId} and ${chat}
          returning chats.message_count as seq, parent.id as parent_id, parent.line_id as line_id
        )`;
      insert = sql`${insertInto} select seq, ${values}, parent_id, line_id from counted returning ${returning}`;
    }
    if (lease !== 'released') return sql<Selectable<MessagesTable>>`with ${steps} ${insert}`;
    // Every part of a WITH runs: a message refused must leave the lease where it was.
    const release = this.locks.releaseStatement({ chatId, holder: args.holder }, sql`exists (select 1 from counted)`);
    return sql<Selectable<MessagesTable> & { lease_awaited: boolean | null }>`
      with ${steps}, released as (${release}), inserted as (${insert})
      select inserted.*, (select awaited from released) as lease_awaited from inserted`;
  }

  async findMessage({ tenantId, chatId }: ChatKey, messageId: string): Promise<Message | null> {
    const {
      rows: [row],
    } = await this.statements.findMessage({ tenantId, chatId, messageId });
    return row ? toMessage(row) : null;
  }

  async listMessages(key: ChatKey, { limit, afterSeq }: { limit: number; afterSeq?: number }): Promise<Message[]> {
    const { tenantId, chatId } = key;
    const { rows } =
      afterSeq === undefined
        ? await this.statements.listMessages({ tenantId, chatId, limit })
        : await this.statements.listMessagesAfter({ tenantId, chatId, limit, afterSeq });
    return rows.map(toMessage);
  }

  async listBranch(
    key: ChatKey,
    { throughId, limit, afterSeq = 0 }: BranchPage & { afterSeq?: number },
  ): Promise<Message[]> {
    const { tenantId, chatId } = key;
    // The branch's lines, newest first, back to the first that holds messages after `afterSeq`.
    const slices: LineSlice[] = [];
    for (let messageId: string | null = throughId; messageId !== null;) {
      const {
        rows: [slice],
      } = await this.statements.lineSliceOf({ tenantId, chatId, messageId });
      if (!slice) break;
      if (slice.seq > afterSeq) slices.push(slice);
      messageId = slice.head_seq > afterSeq ? slice.fork : null;
    }
    const page: Message[] = [];
    for (let s = slices.length - 1; s >= 0 && page.length < limit; s--) {
      const { rows } = await this.statements.lineAscending({
        lineId: slices[s].line_id,
        afterSeq,
        throughSeq: slices[s].seq,
        limit: limit - page.length,
      });
      for (const row of rows) page.push(toMessage(row));
    }
    return page;
  }

  async listRecentMessages(key: ChatKey, { throughId, limit }: BranchPage): Promise<ContextMessage[]> {
    const { tenantId, chatId } = key;
    const page: ContextMessage[] = [];
    // One line at a time: a line read to its first message continues at that message's parent.
    for (let through: string | null = throughId; through !== null && page.length < limit;) {
      const wanted = limit - page.length;
      const { rows } = await this.statements.lineNewestFirst({ tenantId, chatId, throughId: through, limit: wanted });
      for (const row of rows) page.push(toContextMessage(row));
      through = rows.length > 0 && rows.length < wanted ? rows[rows.length - 1].parent_id : null;
    }
    return page;
  }

  async switchBranch(key: ChatKey, messageId: string): Promise<Chat | null> {
    const { tenantId, chatId } = key;
    // Appends move message_count: an update conditioned on the count read before the descendant
    // was found cannot make a message current that has since been given a child.
    for (;;) {
      const chat = await this.findChat(key);
      if (!chat) return null;
      const newest = await sql<{ id: string; line_id: string }>`
        with recursive below(id, seq) as (
          select id, seq from messages where id = ${messageId} and chat_id = ${chatId}
          union all
          select child.id, child.seq from messages child join below on child.parent_id = below.id
        )
        select id, line_id from messages where id = (select id from below order by seq desc limit 1)`.execute(this.db);
      const [descendant] = newest.rows;
      if (!descendant) throw new UnknownMessageIdError(messageId, 'currentMessageId');
      const row = await this.db
        .updateTable('chats')
        .set({
          current_message_id: descendant.id,
          current_line_id: descendant.line_id,
          updated_at: new Date().toISOString(),
        })
        .where('id', '=', chatId)
        .where('tenant_id', '=', tenantId)
        .where('message_count', '=', chat.messageCount)
        .returning(CHAT_COLUMNS)
        .executeTakeFirst();
      if (row) return toChat(row);
    }
  }

  withChatLock<T>(chatId: string, work: (lock: ChatLock) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.locks.run(chatId, work, signal);
  }

  async onModuleDestroy(): Promise<void> {
    await this.database.close();
  }
}
