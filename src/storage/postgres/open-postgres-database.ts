import { Logger } from '@nestjs/common';
import { Kysely } from 'kysely';
import { ClientConfig, Pool } from 'pg';
import type { DatabaseSchema } from '../sql/database-schema';
import type { SqlDatabase } from '../sql/sql-database';
import { POSTGRES_DIALECT } from '../sql/sql-dialect';
import { PgDialect } from './pg-driver';
import { PostgresLeaseReleaseSignals } from './postgres-lease-release-signals';

/** Notifications wake waiters; this polling is only the fallback when one is missed. */
const MAX_POLL_MS = 1_000;
const POOL_SIZE = 10;
/**
 * How long a connection may take to be ready; `pg` waits for ever by default, so a server that
 * takes the connection and never answers (or a dropped route, until the OS gives up after ~2 min)
 * held start-up. The pool applies it to a wait for a free connection too.
 */
const CONNECT_TIMEOUT_MS = 5_000;

export async function openPostgresDatabase(url: string): Promise<SqlDatabase> {
  const connection: ClientConfig = { connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS };
  const pool = new Pool({ ...connection, max: POOL_SIZE });
  // An idle pooled connection that breaks is replaced by the pool; without a listener it would
  // crash the process.
  pool.on('error', (error) => new Logger('Storage').warn(`PostgreSQL connection lost: ${error.message}`));
  const db = new Kysely<DatabaseSchema>({ dialect: new PgDialect(pool) });
  const releaseSignals = new PostgresLeaseReleaseSignals(db, connection, MAX_POLL_MS);
  try {
    await releaseSignals.start();
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return {
    dialect: POSTGRES_DIALECT,
    db,
    releaseSignals,
    async close() {
      await releaseSignals.close();
      await db.destroy();
    },
  };
}
