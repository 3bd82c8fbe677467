import type { Selectable, Updateable } from 'kysely';
import {
  ClaimOptions,
  IdempotencyClaim,
  IdempotencyScope,
  IdempotencyStore,
} from '../../idempotency/idempotency.store';
import type { IdempotencyKeysTable } from './database-schema';
import type { SqlDatabase } from './sql-database';

/**
 * A record's columns but its key, named: a column a migration adds must not change what a
 * prepared statement returns (see pg-driver.ts).
 */
const RECORD_COLUMNS = [
  'holder',
  'fingerprint',
  'state',
  'progress',
  'response',
  'lease_until',
  'expires_at',
] as const satisfies readonly (keyof IdempotencyKeysTable)[];
type RecordRow = Pick<Selectable<IdempotencyKeysTable>, (typeof RECORD_COLUMNS)[number]>;

/** Attempts of a claim that lost a race to change the same record; each loss means another won. */
const CLAIM_ATTEMPTS = 5;

/**
 * Idempotency records in SQLite or PostgreSQL. A claim never holds a row lock: it inserts, or
 * changes a record only where it still is as read (compare-and-set), so concurrent claims of one
 * key on any number of instances see exactly one winner.
 */
export class SqlIdempotencyStore extends IdempotencyStore {
  constructor(private readonly database: SqlDatabase) {
    super();
  }

  private get db() {
    return this.database.db;
  }

  private record({ tenantId, route, chatId, key }: IdempotencyScope) {
    return this.db
      .selectFrom('idempotency_keys')
      .select(RECORD_COLUMNS)
      .where('tenant_id', '=', tenantId)
      .where('route', '=', route)
      .where('chat_id', '=', chatId)
      .where('key', '=', key);
  }

  private update({ tenantId, route, chatId, key }: IdempotencyScope) {
    return this.db
      .updateTable('idempotency_keys')
      .where('tenant_id', '=', tenantId)
      .where('route', '=', route)
      .where('chat_id', '=', chatId)
      .where('key', '=', key);
  }

  /** The record while `holder` holds it. */
  private updateHeld(scope: IdempotencyScope, holder: string) {
    return this.update(scope).where('holder', '=', holder).where('state', '=', 'running');
  }

  async claim(
    scope: IdempotencyScope,
    { holder, fingerprint, ttlMs, leaseMs, now }: ClaimOptions,
  ): Promise<IdempotencyClaim> {
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const inserted = await this.db
        .insertInto('idempotency_keys')
        .values({
          tenant_id: scope.tenantId,
          route: scope.route,
          chat_id: scope.chatId,
          key: scope.key,
          holder,
          fingerprint,
          state: 'running',
          progress: null,
          response: null,
          lease_until: now + leaseMs,
          expires_at: now + ttlMs,
        })
        .onConflict((conflict) => conflict.columns(['tenant_id', 'route', 'chat_id', 'key']).doNothing())
        .returning('key')
        .executeTakeFirst();
      if (inserted) return { kind: 'new' };

      const row = await this.record(scope).executeTakeFirst();
      if (!row) continue; // expired and deleted meanwhile: insert again
      const live = row.state === 'running' && Number(row.lease_until) > now;
      const expired = Number(row.expires_at) <= now && !live;
      if (!expired && row.fingerprint !== fingerprint) return { kind: 'mismatch' };
      if (!expired && row.state === 'completed') return { kind: 'replay', response: row.response! };
      if (live) return { kind: 'in-progress' };

      // Expired (start afresh), stopped, or running under a lapsed lease (its holder crashed): take it over.
      const taken = await this.compareAndSet(scope, row, {
        holder,
        fingerprint,
        state: 'running',
        lease_until: now + leaseMs,
        ...(expired && { progress: null, response: null, expires_at: now + ttlMs }),
      });
      if (taken) return expired ? { kind: 'new' } : { kind: 'resume', progress: row.progress };
    }
    return { kind: 'in-progress' };
  }

  private async compareAndSet(
    scope: IdempotencyScope,
    seen: RecordRow,
    changes: Updateable<IdempotencyKeysTable>,
  ): Promise<boolean> {
    const result = await this.update(scope)
      .set(changes)
      .where('holder', '=', seen.holder)
      .where('state', '=', seen.state)
      .where('lease_until', '=', Number(seen.lease_until))
      .where('expires_at', '=', Number(seen.expires_at))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async renew(scope: IdempotencyScope, holder: string, leaseUntil: number): Promise<void> {
    await this.updateHeld(scope, holder).set({ lease_until: leaseUntil }).execute();
  }

  async recordProgress(scope: IdempotencyScope, holder: string, progress: string): Promise<boolean> {
    const { numUpdatedRows } = await this.updateHeld(scope, holder).set({ progress }).executeTakeFirstOrThrow();
    return numUpdatedRows > 0n;
  }

  async complete(scope: IdempotencyScope, holder: string, response: string): Promise<void> {
    await this.updateHeld(scope, holder).set({ state: 'completed', response }).execute();
  }

  async release(scope: IdempotencyScope, holder: string): Promise<void> {
    const { tenantId, route, chatId, key } = scope;
    // Nothing to resume from: forget the key, so a repeat starts afresh.
    await this.db
      .deleteFrom('idempotency_keys')
      .where('tenant_id', '=', tenantId)
      .where('route', '=', route)
      .where('chat_id', '=', chatId)
      .where('key', '=', key)
      .where('holder', '=', holder)
      .where('state', '=', 'running')
      .where('progress', 'is', null)
      .execute();
    await this.updateHeld(scope, holder).set({ state: 'stopped' }).execute();
  }

  async deleteExpired(now: number): Promise<number> {
    const result = await this.db
      .deleteFrom('idempotency_keys')
      .where('expires_at', '<=', now)
      .where((eb) => eb.or([eb('state', '!=', 'running'), eb('lease_until', '<=', now)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
