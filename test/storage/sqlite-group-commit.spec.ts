import BetterSqlite3 from 'better-sqlite3';
import { sql } from 'kysely';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SqlDatabase } from '../../src/storage/sql/sql-database';
import { openSqliteDatabase } from '../../src/storage/sqlite/open-sqlite-database';

/**
 * SQLite's writes are committed in groups, one commit for the writes of one pass of the event
 * loop. Seen from outside: a write is acknowledged only once another connection can read it, a
 * failing write fails alone, a failure that undoes the transaction fails the whole group, and
 * explicit transactions and other connections (in this process too) work around the groups.
 */
describe('SQLite group commit', () => {
  let dir: string;
  let path: string;
  const open: SqlDatabase[] = [];
  /** Another connection to the file: what it reads is committed. */
  let observer: BetterSqlite3.Database;

  const openDatabase = async (): Promise<SqlDatabase> => {
    const database = openSqliteDatabase(path);
    open.push(database);
    return database;
  };
  const committed = (): string[] =>
    (observer.prepare('select name from notes order by name').all() as { name: string }[]).map((row) => row.name);
  const insert = (database: SqlDatabase, name: string) =>
    sql`insert into notes (name) values (${name})`.execute(database.db);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'konko-group-commit-'));
    path = join(dir, 'test.db');
    const database = await openDatabase();
    await sql`create table notes (name text primary key)`.execute(database.db);
    // A note named 'undo' makes SQLite roll back the whole transaction it is written in.
    await sql`create trigger undo_all before insert on notes when new.name = 'undo'
      begin select raise(rollback, 'undone'); end`.execute(database.db);
    observer = new BetterSqlite3(path, { readonly: true });
  });

  afterEach(async () => {
    observer.close();
    for (const database of open.splice(0)) await database.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('should acknowledge a write only once another connection can read it', async () => {
    const [database] = open;
    const readableWhenAcknowledged = await Promise.all(
      ['a', 'b', 'c'].map((name) => insert(database, name).then(() => committed().includes(name))),
    );
    expect(readableWhenAcknowledged).toEqual([true, true, true]);
  });

  it('should fail only the write that broke a constraint, and keep the others of its group', async () => {
    const [database] = open;
    await insert(database, 'taken');
    const results = await Promise.allSettled(['x', 'taken', 'y'].map((name) => insert(database, name)));
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(committed()).toEqual(['taken', 'x', 'y']);
  });

  it('should fail every write of a group that SQLite rolled back', async () => {
    const [database] = open;
    const results = await Promise.allSettled(['x', 'undo', 'y'].map((name) => insert(database, name)));
    // 'y' came after the rollback, in a group of its own.
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
    expect(committed()).toEqual(['y']);
  });

  it('should fail every write of a group whose commit failed, and go on with the next group', async () => {
    const [database] = open;
    // A deferred foreign key is checked at COMMIT: a row that breaks it fails the commit, not its statement.
    await sql`create table parents (id text primary key)`.execute(database.db);
    await sql`create table children (parent_id text references parents (id) deferrable initially deferred)`.execute(
      database.db,
    );
    const results = await Promise.allSettled([
      insert(database, 'a'),
      sql`insert into children (parent_id) values ('nobody')`.execute(database.db),
    ]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    await insert(database, 'b');
    expect(committed()).toEqual(['b']);
  });

  it('should commit the open group before an explicit transaction, and hold other writes until it ends', async () => {
    const [database] = open;
    const before = insert(database, 'before');
    let inside: string[] = [];
    const transaction = database.db.transaction().execute(async (trx) => {
      await sql`insert into notes (name) values ('t1')`.execute(trx);
      inside = committed();
      await sql`insert into notes (name) values ('t2')`.execute(trx);
    });
    const during = insert(database, 'during');
    await Promise.all([before, transaction, during]);
    // The group was committed when the transaction began; the transaction's writes were not yet.
    expect(inside).toEqual(['before']);
    expect(committed()).toEqual(['before', 'during', 't1', 't2']);
  });

  it('should roll back an explicit transaction whole, and go on grouping after it', async () => {
    const [database] = open;
    await expect(
      database.db.transaction().execute(async (trx) => {
        await sql`insert into notes (name) values ('t1')`.execute(trx);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    await Promise.all([insert(database, 'a'), insert(database, 'b')]);
    expect(committed()).toEqual(['a', 'b']);
  });

  it('should let two connections in one process write at once without a lock error', async () => {
    const [first] = open;
    const second = await openDatabase();
    const names = Array.from({ length: 40 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((name, i) => insert(i % 2 === 0 ? first : second, name)));
    expect(committed()).toEqual(names);
  });

  it('should commit durably (synchronous = FULL), also when the database is opened again in WAL mode', async () => {
    const [first] = open;
    const mode = async (database: SqlDatabase) =>
      (await sql<{ synchronous: number }>`pragma synchronous`.execute(database.db)).rows[0].synchronous;
    expect(await mode(first)).toBe(2);
    const again = await openDatabase();
    expect(await mode(again)).toBe(2);
  });
});
