import { Migrator, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { openPostgresDatabase } from '../../src/storage/postgres/open-postgres-database';
import { currentSchema, migrationsFor } from '../../src/storage/sql/migrations';
import type { SqlDatabase } from '../../src/storage/sql/sql-database';
import { SqlMessageSearch } from '../../src/storage/sql/sql-message-search';
import { openSqliteDatabase } from '../../src/storage/sqlite/open-sqlite-database';
import { openTestRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { key, TENANT, userMessage } from './fixtures';

/** The database opened without bringing it up to date. */
const openAsIs = (database: TestDatabase): Promise<SqlDatabase> | SqlDatabase =>
  database.settings.kind === 'sqlite'
    ? openSqliteDatabase(database.settings.path)
    : openPostgresDatabase(database.settings.url);

async function migrateTo(database: SqlDatabase, migration: string): Promise<void> {
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: async () => migrationsFor(database.dialect.name) },
    migrationTableSchema: database.dialect.name === 'postgres' ? await currentSchema(database.db) : undefined,
  });
  const { error } = await migrator.migrateTo(migration);
  if (error) throw error;
}

describe.each(testDatabases())('Migrations on %s', (_name, create) => {
  let database: TestDatabase;
  beforeEach(async () => {
    database = await create();
  });
  afterEach(() => database.drop());

  it('should make each chat stored before branches the line it was, index it for search, and append after it', async () => {
    const old = await openAsIs(database);
    await migrateTo(old, '0006_sqlite_counts_messages');
    const chatId = uuidv7();
    const now = new Date().toISOString();
    await sql`insert into chats (id, tenant_id, title, system_prompt, model, metadata, message_count, created_at, updated_at, last_message_at)
      values (${chatId}, ${TENANT}, null, null, 'test-model', '{}', 0, ${now}, ${now}, null)`.execute(old.db);
    const ids = [uuidv7(), uuidv7(), uuidv7()];
    for (const [i, id] of ids.entries()) {
      await sql`insert into messages (id, chat_id, seq, role, content, status, in_reply_to, model, usage, token_count, created_at)
        values (${id}, ${chatId}, ${i + 1}, 'user', ${`old ${i + 1}`}, 'completed', null, null, null, 1, ${now})`.execute(
        old.db,
      );
    }
    // SQLite counted by trigger since 0006; PostgreSQL counted in the insert's statement.
    if (old.dialect.name === 'postgres')
      await sql`update chats set message_count = 3 where id = ${chatId}`.execute(old.db);
    await old.close();

    const { repository, database: migratedDatabase, close } = await openTestRepository(database);
    try {
      // The search index is built for the messages stored before it.
      const found = await new SqlMessageSearch(migratedDatabase).search({
        tenantId: TENANT,
        terms: ['old'],
        limit: 10,
      });
      expect(found.map((hit) => hit.message.id).sort()).toEqual([...ids].sort());
      const migrated = await repository.listMessages(key(chatId), { limit: 10 });
      expect(migrated.map((m) => [m.id, m.parentId])).toEqual([
        [ids[0], null],
        [ids[1], ids[0]],
        [ids[2], ids[1]],
      ]);
      expect(await repository.findChat(key(chatId))).toMatchObject({ messageCount: 3, currentMessageId: ids[2] });
      const next = await repository.appendMessage(key(chatId), userMessage('new 4'));
      expect(next).toMatchObject({ seq: 4, parentId: ids[2] });
      const branch = await repository.listBranch(key(chatId), { throughId: next.id, limit: 10 });
      expect(branch.map((m) => m.content)).toEqual(['old 1', 'old 2', 'old 3', 'new 4']);
      const edit = await repository.appendMessage(key(chatId), userMessage('edit 2', { parentId: ids[0] }));
      expect(
        (await repository.listBranch(key(chatId), { throughId: edit.id, limit: 10 })).map((m) => m.content),
      ).toEqual(['old 1', 'edit 2']);
      expect((await repository.switchBranch(key(chatId), ids[1]))!.currentMessageId).toBe(next.id);
    } finally {
      await close();
    }
  });

  it('should find the words inside the links of messages stored before PostgreSQL indexed them', async () => {
    const old = await openAsIs(database);
    await migrateTo(old, '0009_message_search');
    const chatId = uuidv7();
    const messageId = uuidv7();
    const now = new Date().toISOString();
    await sql`insert into chats (id, tenant_id, title, system_prompt, model, metadata, message_count, created_at, updated_at, last_message_at, current_message_id)
      values (${chatId}, ${TENANT}, null, null, 'test-model', '{}', 1, ${now}, ${now}, ${now}, ${messageId})`.execute(
      old.db,
    );
    await sql`insert into messages (id, chat_id, seq, role, content, status, in_reply_to, model, usage, token_count, created_at, parent_id, line_id)
      values (${messageId}, ${chatId}, 1, 'user', 'See docs.konko.dev/guide/install', 'completed', null, null, null, 1, ${now}, null, ${messageId})`.execute(
      old.db,
    );
    await old.close();

    const { database: migrated, close } = await openTestRepository(database);
    try {
      const found = await new SqlMessageSearch(migrated).search({ tenantId: TENANT, terms: ['guide'], limit: 10 });
      expect(found.map((hit) => hit.message.id)).toEqual([messageId]);
    } finally {
      await close();
    }
  });
});
