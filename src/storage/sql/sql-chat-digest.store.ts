import { sql } from 'kysely';
import { ChatKey } from '../../chats/chat';
import { ChatDigestStore, StoredChatDigest } from '../../summaries/chat-digest.store';
import type { SqlDatabase } from './sql-database';

/** Digests in SQLite or PostgreSQL: one row per chat, deleted with it by the foreign key's cascade. */
export class SqlChatDigestStore extends ChatDigestStore {
  constructor(private readonly database: SqlDatabase) {
    super();
  }

  private get db() {
    return this.database.db;
  }

  async load({ tenantId, chatId }: ChatKey): Promise<StoredChatDigest | null> {
    const row = await this.db
      .selectFrom('chat_digests')
      .innerJoin('chats', 'chats.id', 'chat_digests.chat_id')
      .select(['chat_digests.last_seq', 'chat_digests.snapshot'])
      .where('chat_digests.chat_id', '=', chatId)
      .where('chats.tenant_id', '=', tenantId)
      .executeTakeFirst();
    return row ? { lastSeq: row.last_seq, snapshot: row.snapshot } : null;
  }

  async save({ tenantId, chatId }: ChatKey, { lastSeq, snapshot }: StoredChatDigest): Promise<void> {
    // Inserted through a select of the chat: nothing for a chat that is gone or another tenant's.
    await this.db
      .insertInto('chat_digests')
      .columns(['chat_id', 'last_seq', 'snapshot'])
      .expression((eb) =>
        eb
          .selectFrom('chats')
          .select([
            'chats.id',
            sql<number>`cast(${lastSeq} as integer)`.as('last_seq'),
            sql<string>`cast(${snapshot} as text)`.as('snapshot'),
          ])
          .where('chats.id', '=', chatId)
          .where('chats.tenant_id', '=', tenantId),
      )
      .onConflict((conflict) =>
        conflict
          .column('chat_id')
          .doUpdateSet((eb) => ({ last_seq: eb.ref('excluded.last_seq'), snapshot: eb.ref('excluded.snapshot') }))
          .where('chat_digests.last_seq', '<=', (eb) => eb.ref('excluded.last_seq')),
      )
      .execute();
  }
}
