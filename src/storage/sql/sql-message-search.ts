import { RawBuilder, Selectable, sql } from 'kysely';
import { MessageSearch, SearchHit, SearchPosition, SearchQuery } from '../../search/message-search';
import type { MessagesTable } from './database-schema';
import { messageColumnsOf, toMessage } from './sql-chat.repository';
import type { SqlDatabase } from './sql-database';

type HitRow = Selectable<MessagesTable> & { chat_title: string | null; rank: number };

const MESSAGE_COLUMNS = messageColumnsOf('m');

/**
 * Search by the database's full-text index (migration 0009): PostgreSQL ranks with `ts_rank`,
 * SQLite with FTS5's `bm25` (negated: higher is better here too). The tenant is matched in the
 * same query, through the message's chat.
 */
export class SqlMessageSearch extends MessageSearch {
  constructor(private readonly database: SqlDatabase) {
    super();
  }

  async search({ tenantId, terms, limit, after }: SearchQuery): Promise<SearchHit[]> {
    const page =
      this.database.dialect.name === 'postgres'
        ? this.postgresPage(tenantId, terms, limit, after)
        : this.sqlitePage(tenantId, terms, limit, after);
    const { rows } = await page.execute(this.database.db);
    return rows.map((row) => ({ message: toMessage(row), chatTitle: row.chat_title, rank: Number(row.rank) }));
  }

  /** `ts_rank` weighs a message alone: a rank never moves, and the page goes on below the last one. */
  private postgresPage(tenantId: string, terms: readonly string[], limit: number, after?: SearchPosition) {
    const page = after ? sql`where rank < ${after.rank} or (rank = ${after.rank} and id < ${after.messageId})` : sql``;
    return sql<HitRow>`
      with hits as (${this.postgresHits(tenantId, terms)})
      select * from hits ${page} order by rank desc, id desc limit ${limit}`;
  }

  /**
   * `bm25` weighs each word by the whole index, every tenant's messages: ranks move as messages are
   * stored, so the page goes on after the last hit itself, wherever it ranks now (by its rank only
   * if its chat was deleted).
   */
  private sqlitePage(tenantId: string, terms: readonly string[], limit: number, after?: SearchPosition) {
    const hits = this.sqliteHits(tenantId, terms);
    if (!after)
      return sql<HitRow>`with hits as (${hits}) select * from hits order by rank desc, id desc limit ${limit}`;
    return sql<HitRow>`
      with hits as (${hits}),
      ranked as (select *, row_number() over (order by rank desc, id desc) as place from hits),
      last as (select place from ranked where id = ${after.messageId})
      select * from ranked
      where case when exists (select 1 from last) then place > (select place from last)
        else rank < ${after.rank} or (rank = ${after.rank} and id < ${after.messageId}) end
      order by place limit ${limit}`;
  }

  private postgresHits(tenantId: string, terms: readonly string[]): RawBuilder<HitRow> {
    return sql<HitRow>`
      select ${MESSAGE_COLUMNS}, c.title as chat_title, ts_rank(m.search_vector, query)::float8 as rank
      from messages m join chats c on c.id = m.chat_id, plainto_tsquery('english', ${terms.join(' ')}) query
      where c.tenant_id = ${tenantId} and m.search_vector @@ query`;
  }

  private sqliteHits(tenantId: string, terms: readonly string[]): RawBuilder<HitRow> {
    // Terms are letters and digits only (search-terms.ts): quoted, each is a plain FTS5 string.
    const match = terms.map((term) => `"${term}"`).join(' ');
    return sql<HitRow>`
      select ${MESSAGE_COLUMNS}, c.title as chat_title, -bm25(messages_fts) as rank
      from messages_fts join messages m on m.rowid = messages_fts.rowid join chats c on c.id = m.chat_id
      where messages_fts match ${match} and c.tenant_id = ${tenantId}`;
  }
}
