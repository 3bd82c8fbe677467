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
import type { Pool, PoolClient } from 'pg';

/** Statements worth naming: the server plans a named one once per connection, not at every run. */
const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;
/** The service runs a few dozen distinct statements; the bound guards against unforeseen ones. */
const MAX_NAMED_STATEMENTS = 256;

class PgConnection implements DatabaseConnection {
  constructor(
    readonly client: PoolClient,
    private readonly nameOf: (sql: string) => string | undefined,
  ) {}

  async executeQuery<R>({ sql, parameters }: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.client.query<R & object>({
      name: this.nameOf(sql),
      text: sql,
      values: parameters as unknown[],
    });
    const writes = ['INSERT', 'UPDATE', 'DELETE', 'MERGE'].includes(result.command);
    return { rows: result.rows, numAffectedRows: writes ? BigInt(result.rowCount ?? 0) : undefined };
  }

  // eslint-disable-next-line require-yield -- no query of the service streams
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('Streaming queries are not supported.');
  }
}

/**
 * Kysely on a `pg` pool, as Kysely's own PostgreSQL driver does, but every statement the service
 * runs again and again is a named prepared statement: the turn's statements are the same text
 * every time (see prepareQuery), and PostgreSQL, on the same machine, then parses and plans each
 * once per connection instead of at every run.
 */
class PgDriver implements Driver {
  private readonly names = new Map<string, string>();
  private nextName = 0;

  constructor(private readonly pool: Pool) {}

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new PgConnection(await this.pool.connect(), (sql) => this.nameOf(sql));
  }

  async beginTransaction(connection: PgConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin'));
  }

  async commitTransaction(connection: PgConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: PgConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async releaseConnection(connection: PgConnection): Promise<void> {
    connection.client.release();
  }

  async destroy(): Promise<void> {
    await this.pool.end();
  }

  private nameOf(sql: string): string | undefined {
    let name = this.names.get(sql);
    if (name === undefined && PREPARABLE.test(sql) && this.names.size < MAX_NAMED_STATEMENTS) {
      name = `konko_${this.nextName++}`;
      this.names.set(sql, name);
    }
    return name;
  }
}

/** Kysely's PostgreSQL dialect on a `pg` pool, with named prepared statements. */
export class PgDialect implements Dialect {
  constructor(private readonly pool: Pool) {}

  createAdapter() {
    return new PostgresAdapter();
  }

  createDriver(): Driver {
    return new PgDriver(this.pool);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's own signature
  createIntrospector(db: Kysely<any>) {
    return new PostgresIntrospector(db);
  }

  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}
