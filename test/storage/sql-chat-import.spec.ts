import { Kysely, sql } from 'kysely';
import type { ImportedMessage } from '../../src/chats/chat.repository';
import { openTestRepository, OpenedRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { importedMessages, newChat, TENANT } from './fixtures';

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
    jest.restoreAllMocks();
    await context.opened.close();
    await context.database.drop();
  });
  return context;
}

describe.each(testDatabases())('SqlChatRepository.importChat on %s', (_name, create) => {
  const context = freshRepositoryPerTest(create);

  it('should store a thousand messages in six multi-row inserts', async () => {
    const executeQuery = jest.spyOn(Kysely.prototype, 'executeQuery');
    const messages = line(1000);
    const chat = await importInto(context.opened, messages, messages[999].id);
    const inserts = executeQuery.mock.calls.filter(
      ([query]) => 'sql' in query && /^insert into "messages"/.test(query.sql),
    );
    expect(inserts).toHaveLength(6); // 512 + 256 + 128 + 64 + 32 + 8
    expect(chat.messageCount).toBe(1000);
    const stored = await context.opened.database.db
      .selectFrom('messages')
      .select(({ fn }) => [fn.countAll<number>().as('count'), fn.count<number>('line_id').distinct().as('lines')])
      .where('chat_id', '=', chat.id)
      .executeTakeFirstOrThrow();
    expect([Number(stored.count), Number(stored.lines)]).toEqual([1000, 1]);
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
