import type { Kysely } from 'kysely';
import type { DatabaseSchema } from './database-schema';
import type { LeaseReleaseSignals } from './lease-release-signals';
import type { SqlDialect } from './sql-dialect';

/** An open SQLite or PostgreSQL database, with what differs between the two. */
export interface SqlDatabase {
  readonly dialect: SqlDialect;
  readonly db: Kysely<DatabaseSchema>;
  readonly releaseSignals: LeaseReleaseSignals;
  close(): Promise<void>;
}
