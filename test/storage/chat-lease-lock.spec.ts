import { sql } from 'kysely';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChatLeaseLostError, UnknownMessageIdError } from '../../src/chats/chat-errors';
import { ChatRepository } from '../../src/chats/chat.repository';
import { OpenedRepository, openTestRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { deferred } from '../support/deferred';
import { until } from '../support/until';
import { key, newChat, userMessage } from './fixtures';

/** The owner of a lease this process takes: its host (letters, digits, `-` and `.`) and pid, then the holding's id. */
const OWN_LEASE = new RegExp(`^${hostname().replaceAll('.', '\\.')}:${process.pid}:[0-9a-f-]{36}$`);

/**
 * The turn lock of the database repositories across instances: each "instance" is a repository
 * with its own connections on the same database, as two service processes would have.
 */
function describeLeaseLock(name: string, create: () => Promise<TestDatabase>): void {
  describe(`ChatLeaseLock on ${name}`, () => {
    let database: TestDatabase;
    const opened: OpenedRepository[] = [];
    const instance = async (leaseMs?: number) => {
      const repository = await openTestRepository(database, leaseMs);
      opened.push(repository);
      return repository;
    };

    beforeEach(async () => {
      database = await create();
    });
    afterEach(async () => {
      for (const repository of opened.splice(0)) await repository.close();
      await database.drop();
    });

    const waiters = async ({ database: db }: OpenedRepository, chatId: string) =>
      (await db.db.selectFrom('chat_lease_waiters').select('owner').where('chat_id', '=', chatId).execute()).length;
    /** `holder` takes the chat's lease and keeps it until `released`; resolves once it holds it. */
    const holdUntil = async (holder: OpenedRepository, chatId: string, released: Promise<void>) => {
      const holding = holder.repository.withChatLock(chatId, () => released);
      await until(
        async () => (await holder.database.db.selectFrom('chat_leases').select('owner').execute()).length === 1,
        'the holder holds the lease',
      );
      return { holding };
    };

    it('should serialize turns of one chat across instances', async () => {
      const [a, b] = [await instance(), await instance()];
      const chat = await a.repository.createChat(newChat());
      let running = 0;
      let maxRunning = 0;
      const turn = (repository: ChatRepository, i: number) =>
        repository.withChatLock(chat.id, async (lock) => {
          running += 1;
          maxRunning = Math.max(maxRunning, running);
          // A turn reads the chat, then writes twice with a pause between: overlapping turns would interleave.
          const before = (await repository.findChat(key(chat.id)))!.messageCount;
          await repository.appendMessage(key(chat.id), userMessage(`question ${i}`), lock);
          await sleep(5);
          const reply = await repository.appendMessage(key(chat.id), userMessage(`reply ${i}`), lock);
          running -= 1;
          return reply.seq - before;
        });

      const steps = await Promise.all(
        Array.from({ length: 10 }, (_, i) => turn(i % 2 ? b.repository : a.repository, i)),
      );

      expect(steps).toEqual(Array(10).fill(2));
      expect(maxRunning).toBe(1);
      const stored = await a.repository.listMessages(key(chat.id), { limit: 100 });
      expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      stored.forEach((m, index) => {
        if (index % 2 === 1) expect(m.content).toBe(stored[index - 1].content.replace('question', 'reply'));
      });
      expect(await waiters(a, chat.id)).toBe(0);
    });

    it('should hand the chat to waiting instances in the order they arrived', async () => {
      const [a, b, c] = [await instance(), await instance(), await instance()];
      const chat = await a.repository.createChat(newChat());
      const order: string[] = [];
      const gate = deferred();
      const { holding } = await holdUntil(a, chat.id, gate.promise);

      const second = b.repository.withChatLock(chat.id, async () => void order.push('b'));
      await until(async () => (await waiters(a, chat.id)) === 1, 'b waits');
      const third = c.repository.withChatLock(chat.id, async () => void order.push('c'));
      await until(async () => (await waiters(a, chat.id)) === 2, 'c waits');
      gate.resolve();
      await Promise.all([holding, second, third]);

      expect(order).toEqual(['b', 'c']);
    });

    it('should let a waiting instance leave the line when its signal aborts, and hand the chat to the next', async () => {
      const [a, b, c] = [await instance(), await instance(), await instance()];
      const chat = await a.repository.createChat(newChat());
      const order: string[] = [];
      const gate = deferred();
      const { holding } = await holdUntil(a, chat.id, gate.promise);
      const leaving = new AbortController();
      const second = b.repository.withChatLock(chat.id, async () => void order.push('b'), leaving.signal);
      await until(async () => (await waiters(a, chat.id)) === 1, 'b waits');
      const third = c.repository.withChatLock(chat.id, async () => void order.push('c'));
      await until(async () => (await waiters(a, chat.id)) === 2, 'c waits');

      leaving.abort('shutting-down');
      await expect(second).rejects.toBe('shutting-down');
      // b's place is gone while a still holds the chat.
      expect(await waiters(a, chat.id)).toBe(1);
      gate.resolve();
      await Promise.all([holding, third]);

      expect(order).toEqual(['c']);
      expect(await waiters(a, chat.id)).toBe(0);
    });

    it('should not take a free lease ahead of an instance already in line', async () => {
      const a = await instance();
      const chat = await a.repository.createChat(newChat());
      const { db, dialect } = a.database;
      // Another instance waits in line (just as the lease is released, before it looks again).
      const { ticket } = await db
        .insertInto('chat_lease_waiters')
        .values({ chat_id: chat.id, owner: 'other-instance', expires_at: sql<number>`${dialect.nowMs} + 60000` })
        .returning('ticket')
        .executeTakeFirstOrThrow();
      let ran = false;

      const turn = a.repository.withChatLock(chat.id, async () => void (ran = true));
      await until(async () => (await waiters(a, chat.id)) === 2, 'a queues behind it');
      expect(ran).toBe(false);
      await db.deleteFrom('chat_lease_waiters').where('ticket', '=', ticket).execute();
      await turn;

      expect(ran).toBe(true);
    });

    it('should keep the lease while a turn runs longer than the lease', async () => {
      // Long enough that a busy machine's event-loop stalls do not outlast a renewal period.
      const leaseMs = 1200;
      const [a, b] = [await instance(leaseMs), await instance(leaseMs)];
      const chat = await a.repository.createChat(newChat());
      const order: string[] = [];
      const longReply = deferred();
      const holding = a.repository.withChatLock(chat.id, async (lock) => {
        await longReply.promise;
        await a.repository.appendMessage(key(chat.id), userMessage('after a long reply'), lock);
        order.push('a');
      });
      const lease = async () => {
        const row = await a.database.db
          .selectFrom('chat_leases')
          .select(['owner', 'expires_at'])
          .where('chat_id', '=', chat.id)
          .executeTakeFirst();
        return row && { owner: row.owner, expiresAt: Number(row.expires_at) };
      };
      await until(async () => (await lease()) !== undefined, 'a holds the lease');
      const taken = (await lease())!;
      const waiting = b.repository.withChatLock(chat.id, async () => void order.push('b'));
      await until(async () => (await waiters(a, chat.id)) === 1, 'b waits');

      // a renews its lease (every third of its length) while the work runs, past the time the
      // lease it took would have run out: a renewal then moves it beyond that time + leaseMs.
      const renewals = new Set<number>();
      await until(
        async () => {
          const now = await lease();
          if (now?.owner === taken.owner && now.expiresAt > taken.expiresAt) renewals.add(now.expiresAt);
          return renewals.size >= 2 && Math.max(...renewals) > taken.expiresAt + leaseMs;
        },
        'a renews its lease twice, the last time after the lease it took would have run out',
        { attempts: 1000 },
      );
      expect(await lease()).toMatchObject({ owner: taken.owner });
      expect(await waiters(a, chat.id)).toBe(1);
      expect(order).toEqual([]);

      longReply.resolve();
      await Promise.all([holding, waiting]);
      expect(order).toEqual(['a', 'b']);
    });

    it("should let a waiting instance have the chat from the work's last write", async () => {
      const [a, b] = [await instance(), await instance()];
      const chat = await a.repository.createChat(newChat());
      const order: string[] = [];
      let waiting: Promise<unknown> | undefined;

      await a.repository.withChatLock(chat.id, async (lock) => {
        const question = await a.repository.appendMessage(key(chat.id), userMessage('a: question'), lock);
        waiting = b.repository.withChatLock(chat.id, async (lockOfB) => {
          await b.repository.appendMessage(key(chat.id), userMessage('b: question'), lockOfB);
          order.push('b');
        });
        await until(async () => (await waiters(a, chat.id)) === 1, 'b waits');
        const reply = userMessage('a: reply', { role: 'assistant', parentId: question.id, inReplyTo: question.id });
        await a.repository.appendMessage(key(chat.id), reply, lock, { lastUnderLock: true });
        // a's work has not ended, and b has the chat already.
        await until(async () => order.includes('b'), 'b writes while a still works');
        order.push('a ends');
      });
      await waiting;

      expect(order).toEqual(['b', 'a ends']);
      const stored = await a.repository.listMessages(key(chat.id), { limit: 10 });
      expect(stored.map((m) => [m.seq, m.content])).toEqual([
        [1, 'a: question'],
        [2, 'a: reply'],
        [3, 'b: question'],
      ]);
      expect(await a.database.db.selectFrom('chat_leases').select('owner').execute()).toEqual([]);
      await expect(b.repository.withChatLock(chat.id, async () => 'free again')).resolves.toBe('free again');
    });

    it('should keep the lease when the last write is refused', async () => {
      const a = await instance();
      const [chat, other] = [await a.repository.createChat(newChat()), await a.repository.createChat(newChat())];
      const elsewhere = await a.repository.appendMessage(key(other.id), userMessage('in another chat'));
      const leases = async () =>
        (await a.database.db.selectFrom('chat_leases').select('chat_id').execute()).map((l) => l.chat_id);

      const held = await a.repository.withChatLock(chat.id, async (lock) => {
        const reply = userMessage('a reply to a message of another chat', { parentId: elsewhere.id });
        await expect(
          a.repository.appendMessage(key(chat.id), reply, lock, { lastUnderLock: true }),
        ).rejects.toBeInstanceOf(UnknownMessageIdError);
        return leases();
      });

      expect(held).toEqual([chat.id]);
      expect(await leases()).toEqual([]);
    });

    it("should take over a crashed instance's lease once it expires", async () => {
      const a = await instance();
      const chat = await a.repository.createChat(newChat());
      const { db, dialect } = a.database;
      // What a process killed while holding the chat leaves behind: a lease nobody renews, valid for an hour.
      await db
        .insertInto('chat_leases')
        .values({ chat_id: chat.id, owner: 'crashed-instance', expires_at: sql<number>`${dialect.nowMs} + 3600000` })
        .execute();
      let ran = false;

      const turn = a.repository.withChatLock(chat.id, async (lock) => {
        ran = true;
        const lease = await db
          .selectFrom('chat_leases')
          .select('owner')
          .where('chat_id', '=', chat.id)
          .executeTakeFirst();
        return { holder: lock.holder, owner: lease?.owner };
      });
      await until(async () => ran || (await waiters(a, chat.id)) === 1, 'a waits for the lease');
      expect(ran).toBe(false);
      // The crashed instance's lease runs out.
      await db.updateTable('chat_leases').set({ expires_at: 0 }).where('chat_id', '=', chat.id).execute();
      const { holder, owner } = await turn;

      expect(ran).toBe(true);
      expect(owner).toBe(holder);
      expect(owner).toMatch(OWN_LEASE);
      expect(await waiters(a, chat.id)).toBe(0);
    });

    it('should refuse the writes of a turn whose lease expired and was taken', async () => {
      const [a, b] = [await instance(), await instance()];
      const chat = await a.repository.createChat(newChat());
      const { db } = a.database;

      const outcome = a.repository.withChatLock(chat.id, async (lock) => {
        await a.repository.appendMessage(key(chat.id), userMessage('a: question'), lock);
        // As if this instance stalled past its lease: the lease lapses and another instance takes the chat.
        await db.updateTable('chat_leases').set({ expires_at: 0 }).where('chat_id', '=', chat.id).execute();
        await b.repository.withChatLock(chat.id, (lockOfB) =>
          b.repository.appendMessage(key(chat.id), userMessage('b: question'), lockOfB),
        );
        await a.repository.appendMessage(key(chat.id), userMessage('a: reply'), lock);
      });

      await expect(outcome).rejects.toBeInstanceOf(ChatLeaseLostError);
      expect((await a.repository.listMessages(key(chat.id), { limit: 10 })).map((m) => [m.seq, m.content])).toEqual([
        [1, 'a: question'],
        [2, 'b: question'],
      ]);
      await expect(b.repository.withChatLock(chat.id, async () => 'free again')).resolves.toBe('free again');
    });
  });
}

for (const [name, create] of testDatabases()) describeLeaseLock(name, create);
