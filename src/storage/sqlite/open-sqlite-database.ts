import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDatabase, SqliteDialect, SqliteStatement } from 'kysely';
import { LRUCache } from 'lru-cache';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSchema } from '../sql/database-schema';
import { LeaseReleaseSignals } from '../sql/lease-release-signals';
import type { SqlDatabase } from '../sql/sql-database';
import { SQLITE_DIALECT } from '../sql/sql-dialect';

/** SQLite has no notifications: instances waiting for a lease look at least this often. */
const MAX_POLL_MS = 100;
/** How long a write waits for another process's write to finish before failing. */
const BUSY_TIMEOUT_MS = 5_000;
/** The service runs a few dozen distinct statements; the bound only guards against unforeseen ones. */
const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely prepares every query anew, and preparing costs SQLite about as much as running one of
 * ours: each distinct SQL text is prepared once and its statement reused.
 */
function withStatementCache(connection: BetterSqlite3.Database): SqliteDatabase {
  const statements = new LRUCache<string, SqliteStatement>({ max: STATEMENT_CACHE_SIZE });
  return {
    close: () => connection.close(),
    prepare(sql) {
      let statement = statements.get(sql);
      if (!statement) statements.set(sql, (statement = connection.prepare(sql)));
      return statement;
    },
  };
}

export function openSqliteDatabase(path: string): SqlDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const connection = new BetterSqlite3(path, { timeout: BUSY_TIMEOUT_MS });
  // WAL: readers never block the writer, and several processes can share the file.
  connection.pragma('journal_mode = WAL');
  // Off by default in SQLite; deleting a chat relies on the cascade to its messages.
  connection.pragma('foreign_keys = ON');
  const db = new Kysely<DatabaseSchema>({ dialect: new SqliteDialect({ database: withStatementCache(connection) }) });
  const releaseSignals = new LeaseReleaseSignals(MAX_POLL_MS);
  return {
    dialect: SQLITE_DIALECT,
    db,
    releaseSignals,
    async close() {
      await releaseSignals.close();
      await db.destroy();
    },
  };
}
