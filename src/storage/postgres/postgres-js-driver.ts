import {
  CompiledQuery,
  DatabaseConnection,
  Dialect,
  Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  QueryResult,
} from 'kysely';
import type { ReservedSql, Sql } from 'postgres';

const WRITES = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

/**
 * A statement goes to whichever of the pool's connections is free, as a prepared statement
 * (parsed once per connection); a transaction reserves one connection for its statements.
 */
class PostgresJsConnection implements DatabaseConnection {
  reserved: ReservedSql | undefined;

  constructor(private readonly pool: Sql) {}

  async executeQuery<R>({ sql, parameters }: CompiledQuery): Promise<QueryResult<R>> {
    const result = await (this.reserved ?? this.pool).unsafe(sql, parameters as never[], { prepare: true });
    return {
      rows: result as unknown as R[],
      numAffectedRows: WRITES.has(result.command) ? BigInt(result.count) : undefined,
    };
  }

  // eslint-disable-next-line require-yield -- no query of the service streams
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('Streaming queries are not supported.');
  }
}

/**
 * Kysely on postgres.js without a connection reserved for every statement, which is what the
 * dialect packages do and which cost a turn more CPU than `pg` did: a statement outside a
 * transaction needs no connection of its own.
 */
class PostgresJsDriver implements Driver {
  constructor(private readonly pool: Sql) {}

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new PostgresJsConnection(this.pool);
  }

  async beginTransaction(connection: PostgresJsConnection): Promise<void> {
    connection.reserved = await this.pool.reserve();
    await connection.executeQuery(CompiledQuery.raw('begin'));
  }

  async commitTransaction(connection: PostgresJsConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: PostgresJsConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async releaseConnection(connection: PostgresJsConnection): Promise<void> {
    connection.reserved?.release();
    connection.reserved = undefined;
  }

  async destroy(): Promise<void> {
    await this.pool.end();
  }
}

/** Kysely's PostgreSQL dialect on a postgres.js pool. */
export class PostgresJsDialect implements Dialect {
  constructor(private readonly pool: Sql) {}

  createAdapter() {
    return new PostgresAdapter();
  }

  createDriver(): Driver {
    return new PostgresJsDriver(this.pool);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's own signature
  createIntrospector(db: Kysely<any>) {
    return new PostgresIntrospector(db);
  }

  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}
