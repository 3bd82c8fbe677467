import type BetterSqlite3 from 'better-sqlite3';
import { CompiledQuery, DatabaseConnection, Driver, QueryResult, SqliteDialect } from 'kysely';
import { LRUCache } from 'lru-cache';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageUnavailableError } from '../../common/errors/storage-unavailable.error';

/** The service runs a few dozen distinct statements; the bound only guards against unforeseen ones. */
const STATEMENT_CACHE_SIZE = 256;

/** Pauses between attempts to take the write lock from another connection, doubling up to the last. */
const FIRST_PAUSE_MS = 1;
const MAX_PAUSE_MS = 50;

/**
 * Failures of the database file or of another process's hold on it, not of the statement: its
 * write lock held past the busy timeout, a full disk, an I/O error, a file it cannot open or write.
 */
const UNAVAILABLE = /^SQLITE_(BUSY|FULL|IOERR|CANTOPEN|READONLY|NOMEM|PROTOCOL)/;

function asStorageError(error: unknown): unknown {
  const { code } = error as { code?: unknown };
  return typeof code === 'string' && UNAVAILABLE.test(code) ? new StorageUnavailableError(error) : error;
}

/** Statements run since the last commit, whose callers hear of them once it is durable. */
interface Batch {
  readonly committed: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const committed = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch that fails with nobody left waiting must not be an unhandled rejection.
  committed.catch(() => undefined);
  return { committed, resolve, reject };
}

/** A handle on the one connection: each Kysely query or transaction gets one. */
class GroupCommitConnection implements DatabaseConnection {
  constructor(private readonly driver: GroupCommitSqliteDriver) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.driver.execute<R>(this, query);
    } catch (error) {
      throw asStorageError(error);
    }
  }

  async *streamQuery<R>(query: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    // No query of the service streams; this one reads all rows at once rather than hold the connection.
    yield await this.executeQuery<R>(query);
  }
}

/**
 * Kysely's SQLite driver with group commit. A write outside an explicit transaction joins the
 * transaction of the current pass of the event loop (opened by its first statement with
 * `BEGIN IMMEDIATE`, committed once the pass's I/O callbacks have run), and its caller hears of
 * its result only after that commit: nothing is acknowledged before it is as durable as a commit
 * of its own would make it. Under load, a commit (with `synchronous = FULL`, an fsync) and FTS5's
 * index flush then serve every turn of the pass instead of one statement each. A statement that
 * fails is undone alone, as in a transaction of its own; a failure that makes SQLite roll the
 * whole transaction back (a full disk, an I/O error) fails every statement of the batch.
 * Reads outside a batch run at once, as before; reads inside one see its writes, so they wait
 * for its commit too. An explicit transaction (Kysely's `transaction()`) commits the open batch
 * first and has the connection to itself until it ends.
 *
 * The connection must have no busy timeout: while another connection holds the write lock, this
 * one waits for it between passes of the event loop, up to `busyTimeoutMs`, instead of inside
 * SQLite, which would stall the event loop and, with both connections in one process, never let
 * the holder commit.
 */
export class GroupCommitSqliteDriver implements Driver {
  private readonly statements = new LRUCache<string, BetterSqlite3.Statement>({ max: STATEMENT_CACHE_SIZE });
  private batch: Batch | null = null;
  /** The connection of the explicit transaction under way, and when it ends. */
  private exclusive: { connection: DatabaseConnection; ended: Promise<void>; end(): void } | null = null;

  constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly busyTimeoutMs: number,
  ) {}

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new GroupCommitConnection(this);
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    while (this.exclusive) await this.exclusive.ended;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    this.exclusive = { connection, ended, end };
    this.commit();
    try {
      const waiting = new LockWait(this.busyTimeoutMs);
      while (!this.tryBegin()) await waiting.pause();
    } catch (error) {
      this.endExclusive();
      throw asStorageError(error);
    }
  }

  async commitTransaction(): Promise<void> {
    try {
      this.db.exec('commit');
    } catch (error) {
      throw asStorageError(error);
    } finally {
      // A commit that failed leaves the transaction open for Kysely's rollback.
      if (!this.db.inTransaction) this.endExclusive();
    }
  }

  async rollbackTransaction(): Promise<void> {
    try {
      if (this.db.inTransaction) this.db.exec('rollback');
    } finally {
      this.endExclusive();
    }
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {
    while (this.exclusive) await this.exclusive.ended;
    this.commit();
    this.db.close();
  }

  /** Runs one statement: at once in the explicit transaction that owns `connection`, else batched. */
  async execute<R>(connection: DatabaseConnection, { sql, parameters }: CompiledQuery): Promise<QueryResult<R>> {
    let waiting: LockWait | undefined;
    for (;;) {
      while (this.exclusive && this.exclusive.connection !== connection) await this.exclusive.ended;
      const statement = this.prepare(sql);
      const alone = !this.exclusive && statement.readonly && !this.batch;
      if (this.exclusive || alone) {
        try {
          return run<R>(statement, parameters);
        } catch (error) {
          // A read can meet a lock in rare cases (another connection recovering the WAL).
          if (!alone || !isBusy(error)) throw error;
          await (waiting ??= new LockWait(this.busyTimeoutMs)).pause();
          continue;
        }
      }
      const batch = this.batch ?? this.openBatch();
      if (!batch) {
        await (waiting ??= new LockWait(this.busyTimeoutMs)).pause();
        continue;
      }
      let result: QueryResult<R>;
      try {
        result = run<R>(statement, parameters);
      } catch (error) {
        // SQLite undid the whole transaction, not just this statement: the batch is lost.
        if (!this.db.inTransaction) this.fail(batch, error);
        throw error;
      }
      await batch.committed;
      return result;
    }
  }

  private prepare(sql: string): BetterSqlite3.Statement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.db.prepare(sql)));
    return statement;
  }

  /** A new batch, or null while another connection holds the write lock. */
  private openBatch(): Batch | null {
    if (!this.tryBegin()) return null;
    const batch = (this.batch = newBatch());
    setImmediate(() => {
      if (this.batch === batch) this.commit();
    });
    return batch;
  }

  /** Commits the open batch, if any, and tells its statements' callers how it went. */
  private commit(): void {
    const batch = this.batch;
    if (!batch) return;
    this.batch = null;
    try {
      this.db.exec('commit');
      batch.resolve();
    } catch (error) {
      // A failed COMMIT (a deferred constraint, a full disk) can leave the transaction open.
      try {
        if (this.db.inTransaction) this.db.exec('rollback');
      } catch {
        // Nothing of the batch was committed either way; its callers hear of the commit's error.
      }
      batch.reject(error);
    }
  }

  /** `BEGIN IMMEDIATE`: false when another connection holds the write lock. */
  private tryBegin(): boolean {
    try {
      this.db.exec('begin immediate');
      return true;
    } catch (error) {
      if (isBusy(error)) return false;
      throw error;
    }
  }

  private fail(batch: Batch, error: unknown): void {
    if (this.batch === batch) this.batch = null;
    batch.reject(error);
  }

  private endExclusive(): void {
    const exclusive = this.exclusive;
    this.exclusive = null;
    exclusive?.end();
  }
}

const isBusy = (error: unknown): boolean =>
  typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('SQLITE_BUSY');

/** Waiting for another connection's write lock: pauses that double, and an error once it took too long. */
class LockWait {
  private readonly deadline: number;
  private pauseMs = FIRST_PAUSE_MS;

  constructor(timeoutMs: number) {
    this.deadline = Date.now() + timeoutMs;
  }

  async pause(): Promise<void> {
    if (Date.now() >= this.deadline) {
      throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    }
    await sleep(this.pauseMs);
    this.pauseMs = Math.min(this.pauseMs * 2, MAX_PAUSE_MS);
  }
}

function run<R>(statement: BetterSqlite3.Statement, parameters: readonly unknown[]): QueryResult<R> {
  if (statement.reader) return { rows: statement.all(parameters) as R[] };
  const { changes, lastInsertRowid } = statement.run(parameters);
  return { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
}

/** Kysely's SQLite dialect on {@link GroupCommitSqliteDriver}. */
export class GroupCommitSqliteDialect extends SqliteDialect {
  constructor(
    private readonly connection: BetterSqlite3.Database,
    private readonly busyTimeoutMs: number,
  ) {
    super({ database: connection });
  }

  override createDriver(): Driver {
    return new GroupCommitSqliteDriver(this.connection, this.busyTimeoutMs);
  }
}
