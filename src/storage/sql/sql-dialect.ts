import { RawBuilder, sql } from 'kysely';

export type SqlDialectName = 'sqlite' | 'postgres';

/** What the shared SQL code needs to know about the dialect it runs on. */
export interface SqlDialect {
  readonly name: SqlDialectName;
  /**
   * The database's clock in epoch milliseconds. Leases are timed by it, not by the instances'
   * clocks, so instances on different hosts agree on when a lease expired.
   */
  readonly nowMs: RawBuilder<number>;
}

export const SQLITE_DIALECT: SqlDialect = {
  name: 'sqlite',
  nowMs: sql<number>`cast(unixepoch('subsec') * 1000 as integer)`,
};

export const POSTGRES_DIALECT: SqlDialect = {
  name: 'postgres',
  nowMs: sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`,
};
