import { ClaimOptions, IdempotencyScope, IdempotencyStore } from '../../src/idempotency/idempotency.store';
import { InMemoryIdempotencyStore } from '../../src/storage/in-memory/in-memory-idempotency.store';
import { openSqlDatabase } from '../../src/storage/open-sql-database';
import { SqlIdempotencyStore } from '../../src/storage/sql/sql-idempotency.store';
import { TestDatabase, testDatabases } from '../support/test-databases';

interface StoreUnderTest {
  /** Stores over the same storage, as separate service instances would have. */
  instances: IdempotencyStore[];
  close(): Promise<void>;
}

const scope = (key: string, overrides: Partial<IdempotencyScope> = {}): IdempotencyScope => ({
  tenantId: 'tenant-a',
  route: 'POST /chats/{chatId}/messages',
  chatId: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
  key,
  ...overrides,
});
const T0 = 1_760_000_000_000;
const at = (now: number, fingerprint = 'body-1', holder = 'h1'): ClaimOptions => ({
  holder,
  fingerprint,
  ttlMs: 60_000,
  leaseMs: 5_000,
  now,
});

/** What every IdempotencyStore does, whatever stores it. */
function describeIdempotencyStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(name, () => {
    let subject: StoreUnderTest;
    let store: IdempotencyStore;
    beforeEach(async () => {
      subject = await open();
      store = subject.instances[0];
    });
    afterEach(() => subject.close());

    it('should hand a new key to its first request, and replay its outcome to repeats', async () => {
      expect(await store.claim(scope('k'), at(T0))).toEqual({ kind: 'new' });
      expect(await store.claim(scope('k'), at(T0 + 1))).toEqual({ kind: 'in-progress' });
      await store.complete(scope('k'), 'h1', '{"outcome":1}');
      expect(await store.claim(scope('k'), at(T0 + 2))).toEqual({ kind: 'replay', response: '{"outcome":1}' });
      expect(await store.claim(scope('k'), at(T0 + 3, 'body-2'))).toEqual({ kind: 'mismatch' });
    });

    it('should keep keys apart by tenant, route, chat and key', async () => {
      await store.claim(scope('k'), at(T0));
      await store.complete(scope('k'), 'h1', 'first');
      for (const other of [
        scope('k', { tenantId: 'tenant-b' }),
        scope('k', { route: 'POST /chats' }),
        scope('k', { chatId: '0198f2c4-5b1e-7c3a-9d2e-000000000000' }),
        scope('K'),
      ]) {
        expect(await store.claim(other, at(T0 + 1))).toEqual({ kind: 'new' });
      }
    });

    it('should let a repeat resume from the progress of an attempt that stopped', async () => {
      await store.claim(scope('k'), at(T0));
      await store.recordProgress(scope('k'), 'h1', 'user message 7');
      await store.release(scope('k'), 'h1');
      expect(await store.claim(scope('k'), at(T0 + 1, 'body-1', 'h2'))).toEqual({
        kind: 'resume',
        progress: 'user message 7',
      });
      expect(await store.claim(scope('k'), at(T0 + 2, 'body-1', 'h3'))).toEqual({ kind: 'in-progress' });
      await store.complete(scope('k'), 'h1', 'stale: h1 let go');
      await store.complete(scope('k'), 'h2', 'done');
      await store.release(scope('k'), 'h2');
      expect(await store.claim(scope('k'), at(T0 + 3))).toEqual({ kind: 'replay', response: 'done' });
    });

    it('should forget a key whose attempt stopped before recording anything', async () => {
      await store.claim(scope('k'), at(T0));
      await store.release(scope('k'), 'h1');
      expect(await store.claim(scope('k'), at(T0 + 1, 'body-2'))).toEqual({ kind: 'new' });
    });

    it('should let a repeat take over a claim whose lease lapsed (its holder died), unless renewed', async () => {
      await store.claim(scope('k'), at(T0));
      await store.recordProgress(scope('k'), 'h1', 'stored');
      await store.renew(scope('k'), 'h1', T0 + 9_000);
      expect(await store.claim(scope('k'), at(T0 + 8_000))).toEqual({ kind: 'in-progress' });
      expect(await store.claim(scope('k'), at(T0 + 9_001))).toEqual({ kind: 'resume', progress: 'stored' });
    });

    it('should ignore the writes of a holder whose lease lapsed and passed the key on, and say so of its progress', async () => {
      await store.claim(scope('k'), at(T0));
      expect(await store.claim(scope('k'), at(T0 + 6_000, 'body-1', 'h2'))).toEqual({ kind: 'resume', progress: null });
      await store.renew(scope('k'), 'h1', T0 + 60_000);
      expect(await store.recordProgress(scope('k'), 'h1', 'from h1')).toBe(false);
      expect(await store.recordProgress(scope('k'), 'h2', 'from h2')).toBe(true);
      await store.release(scope('k'), 'h1');
      expect(await store.claim(scope('k'), at(T0 + 7_000, 'body-1', 'h3'))).toEqual({ kind: 'in-progress' });
      await store.complete(scope('k'), 'h1', 'from h1');
      await store.complete(scope('k'), 'h2', 'from h2');
      expect(await store.claim(scope('k'), at(T0 + 8_000))).toEqual({ kind: 'replay', response: 'from h2' });
    });

    it('should neither expire nor delete a key still running under a live lease', async () => {
      await store.claim(scope('k'), at(T0));
      await store.renew(scope('k'), 'h1', T0 + 70_000);
      expect(await store.deleteExpired(T0 + 65_000)).toBe(0);
      expect(await store.claim(scope('k'), at(T0 + 65_000, 'body-1', 'h2'))).toEqual({ kind: 'in-progress' });
      expect(await store.deleteExpired(T0 + 70_001)).toBe(1);
    });

    it('should treat an expired key as new, and delete expired keys', async () => {
      await store.claim(scope('old'), at(T0));
      await store.complete(scope('old'), 'h1', 'old outcome');
      await store.claim(scope('fresh'), at(T0 + 30_000));
      await store.complete(scope('fresh'), 'h1', 'fresh outcome');
      expect(await store.deleteExpired(T0 + 60_001)).toBe(1);
      expect(await store.claim(scope('fresh'), at(T0 + 60_002))).toEqual({ kind: 'replay', response: 'fresh outcome' });
      expect(await store.claim(scope('old'), at(T0 + 60_002, 'other body'))).toEqual({ kind: 'new' });
      await store.claim(scope('gone'), at(T0));
      await store.complete(scope('gone'), 'h1', 'outcome');
      expect(await store.claim(scope('gone'), at(T0 + 60_000, 'other body'))).toEqual({ kind: 'new' });
    });

    it('should give a key to exactly one of many concurrent requests, across instances', async () => {
      const claims = await Promise.all(
        Array.from({ length: 12 }, (_, i) => subject.instances[i % subject.instances.length].claim(scope('k'), at(T0))),
      );
      expect(claims.filter((c) => c.kind === 'new')).toHaveLength(1);
      expect(claims.filter((c) => c.kind === 'in-progress')).toHaveLength(11);
    });

    it('should give a lapsed claim to exactly one of many concurrent repeats', async () => {
      await store.claim(scope('k'), at(T0));
      await store.recordProgress(scope('k'), 'h1', 'stored');
      const claims = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          subject.instances[i % subject.instances.length].claim(scope('k'), at(T0 + 10_000)),
        ),
      );
      expect(claims.filter((c) => c.kind === 'resume')).toHaveLength(1);
      expect(claims.filter((c) => c.kind === 'in-progress')).toHaveLength(11);
    });
  });
}

describeIdempotencyStoreContract('InMemoryIdempotencyStore', async () => ({
  instances: [new InMemoryIdempotencyStore()],
  close: async () => undefined,
}));

const onOwnDatabase = (create: () => Promise<TestDatabase>) => async (): Promise<StoreUnderTest> => {
  const database = await create();
  const opened = [await openSqlDatabase(database.settings), await openSqlDatabase(database.settings)];
  return {
    instances: opened.map(({ database: db }) => new SqlIdempotencyStore(db)),
    close: async () => {
      for (const { database: db } of opened) await db.close();
      await database.drop();
    },
  };
};

for (const [name, create] of testDatabases()) {
  describeIdempotencyStoreContract(`SqlIdempotencyStore on ${name}`, onOwnDatabase(create));
}
