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
import { Logger } from '@nestjs/common';
import type { Pool, PoolClient } from 'pg';
import { StorageUnavailableError } from '../../common/errors/storage-unavailable.error';

/** Statements worth naming: the server plans a named one once per connection, not at every run. */
const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;
/** The service runs a few dozen distinct statements; the bound guards against unforeseen ones. */
const MAX_NAMED_STATEMENTS = 256;

/** SQLSTATE of "cached plan must not change result type": a named statement's tables changed under it. */
const STALE_PLAN = '0A000';

/**
 * SQLSTATEs of a server that cannot serve now, whatever the statement: its connection failed
 * (class 08, but for 08P01, a protocol violation, which is a bug), an operator or a crash ended
 * it or refuses new ones (57P01-57P03), or it ran out of a resource (class 53: connections,
 * disk, memory).
 */
const UNAVAILABLE_STATE = /^(08(?!P01)...|57P0[123]|53...)$/;
/** What `pg` itself rejects a statement with when its connection ended under it or before it. */
const CONNECTION_ENDED = /^(Connection terminated|Client has encountered a connection error|Client was closed)/;

/** A failure of the connection or the server, not of the statement. */
function isUnavailable(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && UNAVAILABLE_STATE.test(code)) return true;
  // Node's socket errors (ECONNRESET, EPIPE, ETIMEDOUT...): no SQLSTATE class begins with E.
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return typeof message === 'string' && CONNECTION_ENDED.test(message);
}

/** `pg`'s record of the statements a connection parsed, which it never parses again (pg/lib/connection.js). */
const parsedStatements = (client: PoolClient): Record<string, string> =>
  (client as unknown as { connection: { parsedStatements: Record<string, string> } }).connection.parsedStatements;

class PgConnection implements DatabaseConnection {
  /** From a transaction's begin to its commit or rollback. */
  private inTransaction = false;
  /** Named statements found stale in the transaction, dropped when it ends. */
  private readonly stale = new Set<string>();
  /** The connection broke, or its session ended, while checked out: the pool must not hand it out again. */
  private lost: Error | undefined;
  /**
   * The pool listens for the errors of idle connections only. One that breaks under its statement
   * (the server ended its backend, or restarted) fails that statement, and may emit an error
   * after it: unheard, that would crash the process.
   */
  private readonly onError = (error: Error) => {
    this.lost = error;
    new Logger('Storage').warn(`PostgreSQL connection lost: ${error.message}`);
  };

  constructor(
    readonly client: PoolClient,
    private readonly nameOf: (sql: string) => string | undefined,
  ) {
    client.on('error', this.onError);
  }

  /** Back to the pool, which drops it if it broke. */
  release(): void {
    this.client.removeListener('error', this.onError);
    this.client.release(this.lost);
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.run<R>(compiled);
    } catch (error) {
      throw this.lost || isUnavailable(error) ? new StorageUnavailableError(error) : error;
    }
  }

  private async run<R>({ sql, parameters }: CompiledQuery): Promise<QueryResult<R>> {
    const query = { name: this.nameOf(sql), text: sql, values: parameters as unknown[] };
    let result;
    try {
      result = await this.client.query<R & object>(query);
    } catch (error) {
      // FATAL ends the session (its backend was terminated): the next statement must not get it.
      if ((error as { severity?: string }).severity === 'FATAL') this.lost = error as Error;
      const { name } = query;
      if (name === undefined || (error as { code?: string }).code !== STALE_PLAN) throw error;
      // Refused at its first parse, which `pg` then forgets: there is nothing to drop.
      if (parsedStatements(this.client)[name] === undefined) throw error;
      // PostgreSQL checks the result type before the statement runs, so nothing ran, and it would
      // refuse every later run on this connection alike. Alone, the statement is dropped and run
      // once more, parsed anew. A transaction is aborted by the error, which then surfaces, and
      // takes no DEALLOCATE until it ends.
      if (this.inTransaction) {
        this.stale.add(name);
        throw error;
      }
      await this.drop(name);
      result = await this.client.query<R & object>(query);
    }
    const writes = ['INSERT', 'UPDATE', 'DELETE', 'MERGE'].includes(result.command);
    return { rows: result.rows, numAffectedRows: writes ? BigInt(result.rowCount ?? 0) : undefined };
  }

  async begin(): Promise<void> {
    await this.executeQuery(CompiledQuery.raw('begin'));
    this.inTransaction = true;
  }

  async end(statement: 'commit' | 'rollback'): Promise<void> {
    try {
      await this.executeQuery(CompiledQuery.raw(statement));
    } finally {
      // A failed commit ends the transaction too (PostgreSQL rolls it back).
      this.inTransaction = false;
    }
    // The transaction's outcome stands: a statement not dropped is found stale again at its next run.
    for (const name of this.stale) await this.drop(name).catch(() => undefined);
    this.stale.clear();
  }

  /** Drops the named statement on this connection, and makes `pg` parse it again at its next run. */
  private async drop(name: string): Promise<void> {
    await this.client.query(`deallocate ${name}`);
    delete parsedStatements(this.client)[name];
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
 *
 * A migration run while the instance serves can change what a prepared statement returns (a
 * column's type, or a column added under `select *`); PostgreSQL then refuses the statement on
 * that connection at every run ("cached plan must not change result type"). The connection drops
 * it and runs it again, parsed anew (see PgConnection.executeQuery). The service's statements
 * name their columns, so a column a migration adds changes nothing they return, even within a
 * transaction, where a refused statement cannot be run again.
 */
class PgDriver implements Driver {
  private readonly names = new Map<string, string>();
  private nextName = 0;

  constructor(private readonly pool: Pool) {}

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      // Refused, timed out (connecting, or waiting for a pooled connection), or turned away.
      throw new StorageUnavailableError(error);
    }
    return new PgConnection(client, (sql) => this.nameOf(sql));
  }

  async beginTransaction(connection: PgConnection): Promise<void> {
    await connection.begin();
  }

  async commitTransaction(connection: PgConnection): Promise<void> {
    await connection.end('commit');
  }

  async rollbackTransaction(connection: PgConnection): Promise<void> {
    await connection.end('rollback');
  }

  async releaseConnection(connection: PgConnection): Promise<void> {
    connection.release();
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
