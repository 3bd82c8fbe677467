import { Logger } from '@nestjs/common';
import { Kysely } from 'kysely';
import { Pool } from 'pg';
import type { DatabaseSchema } from '../sql/database-schema';
import type { SqlDatabase } from '../sql/sql-database';
import { POSTGRES_DIALECT } from '../sql/sql-dialect';
import { PgDialect } from './pg-driver';
import { PostgresLeaseReleaseSignals } from './postgres-lease-release-signals';

/** Notifications wake waiters; this polling is only the fallback when one is missed. */
const MAX_POLL_MS = 1_000;
const POOL_SIZE = 10;

export async function openPostgresDatabase(url: string): Promise<SqlDatabase> {
  const pool = new Pool({ connectionString: url, max: POOL_SIZE });
  // An idle pooled connection that breaks is replaced by the pool; without a listener it would
  // crash the process.
  pool.on('error', (error) => new Logger('Storage').warn(`PostgreSQL connection lost: ${error.message}`));
  const db = new Kysely<DatabaseSchema>({ dialect: new PgDialect(pool) });
  const releaseSignals = new PostgresLeaseReleaseSignals(db, url, MAX_POLL_MS);
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
