import { Logger } from '@nestjs/common';
import { Kysely } from 'kysely';
import postgres from 'postgres';
import type { DatabaseSchema } from '../sql/database-schema';
import type { SqlDatabase } from '../sql/sql-database';
import { POSTGRES_DIALECT } from '../sql/sql-dialect';
import { PostgresJsDialect } from './postgres-js-driver';
import { PostgresLeaseReleaseSignals } from './postgres-lease-release-signals';

/** Notifications wake waiters; this polling is only the fallback when one is missed. */
const MAX_POLL_MS = 1_000;
const POOL_SIZE = 10;

/**
 * PostgreSQL through postgres.js, whose statements are prepared once per connection. Its LISTEN
 * connection (lease releases) is its own, not one of the pool's.
 */
export async function openPostgresDatabase(url: string): Promise<SqlDatabase> {
  const logger = new Logger('Storage');
  const client = postgres(url, {
    max: POOL_SIZE,
    // The server's notices ("relation already exists, skipping") are not for the service's log.
    onnotice: () => undefined,
  });
  const db = new Kysely<DatabaseSchema>({ dialect: new PostgresJsDialect(client) });
  const releaseSignals = new PostgresLeaseReleaseSignals(client, MAX_POLL_MS, logger);
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
