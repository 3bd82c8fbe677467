import { sql } from 'kysely';
import type { ImportedMessage } from '../../src/chats/chat.repository';
import { openTestRepository, OpenedRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { importedMessages, key, newChat, TENANT } from './fixtures';

/** A line of `count` messages, each the child of the one before. */
const line = (count: number) => importedMessages(Array.from({ length: count }, (_, i) => (i === 0 ? null : i - 1)));

/** Imports `messages` as a new chat of the repository. */
const importInto = (opened: OpenedRepository, messages: ImportedMessage[], currentMessageId: string | null = null) =>
  opened.repository.importChat({ chat: newChat(), createdAt: new Date(), messages, currentMessageId });

/** A repository over an empty database of its own for each test of the enclosing describe. */
function freshRepositoryPerTest(create: () => Promise<TestDatabase>): { opened: OpenedRepository } {
  const context = {} as { opened: OpenedRepository; database: TestDatabase };
  beforeEach(async () => {
    context.database = await create();
    context.opened = await openTestRepository(context.database);
  });
  afterEach(async () => {
    await context.opened.close();
    await context.database.drop();
  });
  return context;
}

describe.each(testDatabases())('SqlChatRepository.importChat on %s', (_name, create) => {
  const context = freshRepositoryPerTest(create);

  it('should store a thousand messages of one line, each as imported and numbered in order', async () => {
    const messages = line(1000);
    const chat = await importInto(context.opened, messages, messages[999].id);
    const asStored = messages.map((message, i) => ({ ...message, chatId: chat.id, seq: i + 1 }));

    expect(chat).toMatchObject({
      messageCount: 1000,
      currentMessageId: messages[999].id,
      lastMessageAt: new Date(messages[999].createdAt),
    });
    expect(await context.opened.repository.listMessages(key(chat.id), { limit: 1000 })).toEqual(asStored);
    // Each message the child of the one before, across however the import split its writes.
    expect(
      await context.opened.repository.listBranch(key(chat.id), { throughId: messages[999].id, limit: 1000 }),
    ).toEqual(asStored);
  });

  it('should store nothing when a statement fails part way: one transaction', async () => {
    const messages = line(700);
    // The same id twice: the primary key refuses the last insert, after the others went in.
    messages[699] = { ...messages[699], id: messages[10].id };
    // The driver's error, not always an Error of the test's realm: its code says what failed.
    await expect(importInto(context.opened, messages)).rejects.toHaveProperty(
      'code',
      expect.stringMatching(/^(SQLITE_CONSTRAINT_PRIMARYKEY|23505)$/),
    );
    expect(await context.opened.repository.listChats(TENANT, { limit: 10 })).toEqual([]);
    const { count } = await context.opened.database.db
      .selectFrom('messages')
      .select(({ fn }) => fn.countAll<number>().as('count'))
      .executeTakeFirstOrThrow();
    expect(Number(count)).toBe(0);
  });
});

// SQLite's planner keeps no statistics of its own to refresh.
describe.each(testDatabases().filter(([name]) => name === 'postgres'))(
  'SqlChatRepository.importChat on %s',
  (_name, create) => {
    const context = freshRepositoryPerTest(create);

    it("should bring PostgreSQL's statistics of chats and messages up to date after a large import", async () => {
      const rowsInStatistics = async () => {
        const { rows } = await sql<{ chats: number; messages: number }>`
          select (select reltuples::float8 from pg_class where oid = 'chats'::regclass) as chats,
                 (select reltuples::float8 from pg_class where oid = 'messages'::regclass) as messages`.execute(
          context.opened.database.db,
        );
        return rows[0];
      };
      // Only the import may analyze the table here, not autovacuum meanwhile.
      for (const table of ['chats', 'messages'])
        await sql`alter table ${sql.table(table)} set (autovacuum_enabled = false)`.execute(context.opened.database.db);
      await importInto(context.opened, line(999));
      expect(await rowsInStatistics()).toEqual({ chats: -1, messages: -1 }); // never analyzed
      await importInto(context.opened, line(1000));
      // Until then the planner took the table for empty and searched through a chat's index.
      expect(await rowsInStatistics()).toEqual({ chats: 2, messages: 1999 });
    });
  },
);
