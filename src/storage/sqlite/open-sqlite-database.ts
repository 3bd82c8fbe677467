import BetterSqlite3 from 'better-sqlite3';
import { Kysely } from 'kysely';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { DatabaseSchema } from '../sql/database-schema';
import { LeaseReleaseSignals } from '../sql/lease-release-signals';
import type { SqlDatabase } from '../sql/sql-database';
import { SQLITE_DIALECT } from '../sql/sql-dialect';
import { GroupCommitSqliteDialect } from './group-commit-sqlite-driver';

/** SQLite has no notifications: instances waiting for a lease look at least this often. */
const MAX_POLL_MS = 100;
/** How long a write waits for another process's write to finish before failing. */
const BUSY_TIMEOUT_MS = 5_000;

export function openSqliteDatabase(path: string): SqlDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  // No busy timeout inside SQLite: the driver waits for another writer itself (see its comment).
  const connection = new BetterSqlite3(path, { timeout: 0 });
  // WAL: readers never block the writer, and several processes can share the file.
  connection.pragma('journal_mode = WAL');
  // Every commit reaches the disk before it is acknowledged. Explicit: better-sqlite3's build makes
  // NORMAL the default of a database opened in WAL mode, which a power cut can roll back.
  connection.pragma('synchronous = FULL');
  // Off by default in SQLite; deleting a chat relies on the cascade to its messages.
  connection.pragma('foreign_keys = ON');
  const db = new Kysely<DatabaseSchema>({ dialect: new GroupCommitSqliteDialect(connection, BUSY_TIMEOUT_MS) });
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
