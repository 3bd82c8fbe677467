import { sql } from 'kysely';
import { IdempotencyScope } from '../../src/idempotency/idempotency.store';
import { SqlIdempotencyStore } from '../../src/storage/sql/sql-idempotency.store';
import { openTestRepository, OpenedRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { importedMessages, key, newChat, userMessage } from './fixtures';

const T0 = 1_760_000_000_000;
const claimAt = (now: number) => ({ holder: 'h1', fingerprint: 'body-1', ttlMs: 60_000, leaseMs: 5_000, now });

/**
 * PostgreSQL keeps each connection's named statements, planned once (see pg-driver.ts): a
 * migration run while an instance serves changes the tables under them. Every statement here runs
 * on the repository's one pooled connection, as the calls never overlap.
 */
describe.each(testDatabases().filter(([name]) => name === 'postgres'))(
  'Statements across a migration on %s',
  (_name, create) => {
    let database: TestDatabase;
    let opened: OpenedRepository;
    let keys: SqlIdempotencyStore;
    beforeEach(async () => {
      database = await create();
      opened = await openTestRepository(database);
      keys = new SqlIdempotencyStore(opened.database);
    });
    afterEach(async () => {
      await opened.close();
      await database.drop();
    });

    const migrate = (statement: string) => sql.raw(statement).execute(opened.database.db);
    const importChat = () =>
      opened.repository.importChat({
        chat: newChat(),
        createdAt: new Date(),
        messages: importedMessages([null, 0]),
        currentMessageId: null,
      });

    /**
     * Every statement that reads or returns a chat or an idempotency key, outside a transaction:
     * a chat made, a turn's writes, the chat read, listed, changed and switched, a key's claims.
     */
    async function serve(round: number): Promise<void> {
      const { repository } = opened;
      const chat = await repository.createChat(newChat());
      const chatKey = key(chat.id);
      const reply = await repository.withChatLock(chat.id, async (lock) => {
        const asked = await repository.appendMessage(chatKey, userMessage('hello'), lock);
        const answer = { ...userMessage('hi'), role: 'assistant' as const, inReplyTo: asked.id };
        return repository.appendMessage(chatKey, answer, lock, { lastUnderLock: true });
      });
      expect(await repository.findChat(chatKey)).toMatchObject({ messageCount: 2, currentMessageId: reply.id });
      expect((await repository.listChats(chat.tenantId, { limit: 1 }))[0].id).toBe(chat.id);
      expect(await repository.setTitleIfUntitled(chatKey, 'Greetings')).toMatchObject({ title: 'Greetings' });
      expect(await repository.updateChat(chatKey, { metadata: { round: `${round}` } })).toMatchObject({
        title: 'Greetings',
        metadata: { round: `${round}` },
      });
      expect(await repository.switchBranch(chatKey, reply.id)).toMatchObject({ currentMessageId: reply.id });

      const scope: IdempotencyScope = { tenantId: chat.tenantId, route: 'POST /chats', chatId: chat.id, key: 'k' };
      expect(await keys.claim(scope, claimAt(T0))).toEqual({ kind: 'new' });
      expect(await keys.claim(scope, claimAt(T0 + 1))).toEqual({ kind: 'in-progress' });
      await keys.complete(scope, 'h1', `outcome ${round}`);
      expect(await keys.claim(scope, claimAt(T0 + 2))).toEqual({ kind: 'replay', response: `outcome ${round}` });
    }

    it('should keep serving chats, turns and idempotency keys after a migration adds columns', async () => {
      await serve(1);
      await importChat();
      await migrate('alter table chats add column archived boolean not null default false');
      await migrate('alter table idempotency_keys add column note text');
      await serve(2);
      // In a transaction too, where a statement planned before could not be tried again.
      expect(await importChat()).toMatchObject({ messageCount: 2 });
    });

    it('should plan its statements again after a migration changes the type of a column they return', async () => {
      await serve(1);
      await migrate('alter table chats alter column title type varchar(500)');
      await migrate('alter table idempotency_keys alter column response type varchar(100000)');
      await serve(2);
    });

    it('should fail the one transaction that met a statement planned before such a change, not the next', async () => {
      await importChat();
      await migrate('alter table chats alter column title type varchar(500)');
      // PostgreSQL aborted the transaction: nothing of it can be tried again but all of it.
      await expect(importChat()).rejects.toMatchObject({ code: '0A000' });
      expect(await importChat()).toMatchObject({ messageCount: 2 });
    });
  },
);
