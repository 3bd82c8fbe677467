import { Logger } from '@nestjs/common';
import { ExpressionBuilder, Kysely, RawBuilder, sql } from 'kysely';
import { hostname } from 'node:os';
import { v7 as uuidv7 } from 'uuid';
import type { ChatLock } from '../../chats/chat.repository';
import { KeyedMutex } from '../../common/concurrency/keyed-mutex';
import type { DatabaseSchema } from './database-schema';
import type { LeaseReleaseSignals } from './lease-release-signals';
import { prepareQuery } from './prepared-query';
import type { SqlDialect } from './sql-dialect';

/** A chat's lease as its holder knows it: its `holder` is the lease row's `owner`. */
export type HeldLease = ChatLock;

const FIRST_POLL_MS = 5;

/** A lease this instance holds while its work runs. */
interface Holding {
  stopRenewing: () => void;
  /** Let go of by the work's last write (see {@link ChatLeaseLock.releasedBy}). */
  released: boolean;
}
/** Tells operators which instance holds or waits for a lease. */
const INSTANCE = `${hostname()}:${process.pid}`;

/**
 * A chat's turn lock across processes, without holding a connection or a transaction while the
 * work runs:
 *
 * - In front, one FIFO mutex per chat in this process, so local callers queue in order and only
 *   the first of them contends in the database.
 * - When no other instance waits, one statement takes the chat's row in `chat_leases` (an atomic
 *   upsert that only replaces an expired row, and only while nobody is in line).
 * - Otherwise it takes a numbered place in `chat_lease_waiters` and, once first in line, the
 *   lease by the same upsert. Places and the lease carry an expiry by the database's clock, so
 *   those of a crashed instance lapse after `leaseMs`. Waiters keep their place alive each time
 *   they look; the holder renews its lease every third of `leaseMs` while the work runs.
 * - Waiters look again when the release is announced (PostgreSQL NOTIFY, sent only when someone
 *   is in line) or after a pause that doubles up to the signals' polling limit.
 *
 * If renewals fail until the lease expires, the work goes on (it cannot be stopped midway) but
 * its writes can: they are conditioned on {@link isStillHeld}, and the schema's unique
 * (chat_id, seq) keeps a second writer from storing a message at a taken position anyway.
 */
export class ChatLeaseLock {
  private readonly logger = new Logger('Storage');
  private readonly local = new KeyedMutex();
  private readonly holdings = new Map<string, Holding>();
  /** The statements every turn runs, built once: the lease taken (when free, or next in line), and released. */
  private readonly takeFree;
  private readonly takeNext;
  private readonly releaseLease;

  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly dialect: SqlDialect,
    private readonly signals: LeaseReleaseSignals,
    private readonly leaseMs: number,
  ) {
    this.takeFree = this.prepareTake({ unlessAwaited: true });
    this.takeNext = this.prepareTake({ unlessAwaited: false });
    this.releaseLease = prepareQuery(db, (lease: HeldLease) => this.releaseStatement(lease));
  }

  /**
   * Runs `work` holding the chat's lease. A caller whose `signal` aborts while it waits, in this
   * instance's line or the database's, leaves it at once and rejects with the signal's reason.
   */
  run<T>(chatId: string, work: (lease: HeldLease) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.local.runExclusive(
      chatId,
      async () => {
        const { lease, place } = await this.acquire(chatId, signal);
        const holding: Holding = { stopRenewing: this.keepRenewed(lease), released: false };
        this.holdings.set(lease.holder, holding);
        try {
          // Held from here: renewed while it leaves the line (which may wait on a lock of the row),
          // and released below should that fail.
          if (place !== null) await this.leaveLineHolding(place);
          return await work(lease);
        } finally {
          this.holdings.delete(lease.holder);
          holding.stopRenewing();
          if (!holding.released) await this.release(lease);
        }
      },
      signal,
    );
  }

  /**
   * Deletes the lease's row and says whether an instance waits for it: run by {@link release}, or
   * by the work's last write beside it, only `when` that wrote (then {@link releasedBy}).
   */
  releaseStatement({ chatId, holder }: HeldLease, when?: RawBuilder<boolean>) {
    return this.db
      .deleteFrom('chat_leases')
      .where('chat_id', '=', chatId)
      .where('owner', '=', holder)
      .$if(when !== undefined, (qb) => qb.where(when!))
      .returning((eb) => this.awaited(eb, chatId).as('awaited'));
  }

  /**
   * Releases the lease now, at the end of the work or after its last write; if that fails, the
   * lease lapses by itself, or the end of the work tries again.
   */
  async release(lease: HeldLease): Promise<void> {
    try {
      const {
        rows: [released],
      } = await this.releaseLease(lease);
      await this.releasedBy(lease, { awaited: Boolean(released?.awaited) });
    } catch (error) {
      this.logger.warn(`Could not release the turn lock of chat ${lease.chatId}: ${(error as Error).message}`);
    }
  }

  /**
   * The lease was released ({@link releaseStatement} ran): other instances may take the chat now,
   * and the end of the work has nothing left to release. Resolves once waiters are told (a single
   * instance, with nobody in line, sends nothing); never rejects.
   */
  releasedBy(lease: HeldLease, { awaited }: { awaited: boolean }): Promise<void> {
    const holding = this.holdings.get(lease.holder);
    if (holding) {
      holding.released = true;
      holding.stopRenewing();
    }
    if (!awaited) return Promise.resolve();
    return this.signals
      .announceRelease(lease.chatId)
      .catch((error: Error) =>
        this.logger.warn(`Could not announce the release of chat ${lease.chatId}: ${error.message}`),
      );
  }

  /** A condition for a write: true while the lease is still valid (not expired, not taken over). */
  isStillHeld(lease: { chatId: string; holder: string }) {
    return (eb: ExpressionBuilder<DatabaseSchema, keyof DatabaseSchema>) =>
      eb.exists(
        eb
          .selectFrom('chat_leases')
          .select('owner')
          .where('chat_leases.chat_id', '=', lease.chatId)
          .where('chat_leases.owner', '=', lease.holder)
          .where('chat_leases.expires_at', '>', this.dialect.nowMs),
      );
  }

  private get expiry() {
    return sql<number>`${this.dialect.nowMs} + ${this.leaseMs}`;
  }

  /**
   * Takes the chat's lease: at once when nobody waits, else in line. Answers the place in line
   * it still has (null when it took none), which the holder leaves.
   */
  private async acquire(
    chatId: string,
    signal: AbortSignal | undefined,
  ): Promise<{ lease: HeldLease; place: number | null }> {
    const owner = `${INSTANCE}:${uuidv7()}`;
    const lease = { chatId, holder: owner };
    if (await this.takeLease(chatId, owner, { unlessAwaited: true })) return { lease, place: null };
    const maxPollMs = Math.min(this.signals.maxPollMs, this.leaseMs / 3);
    signal?.throwIfAborted();
    let ticket = await this.enqueue(chatId, owner);
    let pauseMs = FIRST_POLL_MS;
    try {
      for (;;) {
        signal?.throwIfAborted();
        const wait = this.signals.waitForRelease(chatId, jitter(pauseMs));
        // An abort ends the pause at once, so the caller leaves the line without waiting for a release.
        const stopWaiting = () => wait.cancel();
        signal?.addEventListener('abort', stopWaiting, { once: true });
        try {
          if ((await this.isFirstInLine(chatId, ticket)) && (await this.takeLease(chatId, owner))) {
            wait.cancel();
            return { lease, place: ticket };
          }
          pauseMs = (await wait.released) ? FIRST_POLL_MS : Math.min(pauseMs * 2, maxPollMs);
        } finally {
          signal?.removeEventListener('abort', stopWaiting);
        }
        signal?.throwIfAborted();
        // A place that lapsed (this instance stalled longer than the lease) is taken anew, last.
        if (!(await this.keepPlace(ticket))) ticket = await this.enqueue(chatId, owner);
      }
    } catch (error) {
      await this.leaveLine(ticket).catch(() => undefined);
      // The next in line may be first now: it looks at once rather than after its pause.
      if (signal?.aborted) await this.signals.announceRelease(chatId).catch(() => undefined);
      throw error;
    }
  }

  private async enqueue(chatId: string, owner: string): Promise<number> {
    // Places of crashed instances are ignored once expired; this clears them away.
    await this.db
      .deleteFrom('chat_lease_waiters')
      .where('chat_id', '=', chatId)
      .where('expires_at', '<=', this.dialect.nowMs)
      .execute();
    const { ticket } = await this.db
      .insertInto('chat_lease_waiters')
      .values({ chat_id: chatId, owner, expires_at: this.expiry })
      .returning('ticket')
      .executeTakeFirstOrThrow();
    return Number(ticket);
  }

  private async keepPlace(ticket: number): Promise<boolean> {
    const { numUpdatedRows } = await this.db
      .updateTable('chat_lease_waiters')
      .set({ expires_at: this.expiry })
      .where('ticket', '=', ticket)
      .where('expires_at', '>', this.dialect.nowMs)
      .executeTakeFirst();
    return numUpdatedRows > 0n;
  }

  private async isFirstInLine(chatId: string, ticket: number): Promise<boolean> {
    const first = await this.db
      .selectFrom('chat_lease_waiters')
      .select('ticket')
      .where('chat_id', '=', chatId)
      .where('expires_at', '>', this.dialect.nowMs)
      .orderBy('ticket')
      .limit(1)
      .executeTakeFirst();
    return first !== undefined && Number(first.ticket) === ticket;
  }

  /**
   * Takes the chat's lease if nobody holds it or the holder's has expired; `unlessAwaited` also
   * leaves it to the instances in line, so one that did not queue never overtakes them.
   */
  private async takeLease(chatId: string, owner: string, { unlessAwaited = false } = {}): Promise<boolean> {
    const { rows } = await (unlessAwaited ? this.takeFree : this.takeNext)({ chatId, owner });
    return rows.length > 0;
  }

  private prepareTake({ unlessAwaited }: { unlessAwaited: boolean }) {
    return prepareQuery(this.db, ({ chatId, owner }: { chatId: string; owner: string }) =>
      this.db
        .insertInto('chat_leases')
        .columns(['chat_id', 'owner', 'expires_at'])
        .expression(() => {
          const lease = this.db.selectNoFrom((eb) => [
            eb.val(chatId).as('chat_id'),
            eb.val(owner).as('owner'),
            this.expiry.as('expires_at'),
          ]);
          // `where true`: SQLite reads ON CONFLICT after a bare SELECT as part of the SELECT.
          return unlessAwaited ? lease.where((eb) => eb.not(this.awaited(eb, chatId))) : lease.where(sql.lit(true));
        })
        .onConflict((conflict) =>
          conflict
            .column('chat_id')
            .doUpdateSet({
              owner: (eb) => eb.ref('excluded.owner'),
              expires_at: (eb) => eb.ref('excluded.expires_at'),
              // A stop meant for the turn before.
              stop_requested: (eb) => eb.ref('excluded.stop_requested'),
            })
            .where('chat_leases.expires_at', '<=', this.dialect.nowMs),
        )
        .returning('owner'),
    );
  }

  /** Whether an instance (a live place) waits in line for the chat. */
  private awaited(eb: ExpressionBuilder<DatabaseSchema, keyof DatabaseSchema>, chatId: string) {
    return eb.exists(
      eb
        .selectFrom('chat_lease_waiters')
        .select('ticket')
        .where('chat_lease_waiters.chat_id', '=', chatId)
        .where('chat_lease_waiters.expires_at', '>', this.dialect.nowMs),
    );
  }

  private async leaveLine(ticket: number): Promise<void> {
    await this.db.deleteFrom('chat_lease_waiters').where('ticket', '=', ticket).execute();
  }

  /**
   * Leaves the line once the lease is taken. On failure it tries once more, so that the release
   * of the lease that follows finds the next in line first (a place left behind lapses only after
   * the lease's length), and the failure stands: the work does not run.
   */
  private async leaveLineHolding(ticket: number): Promise<void> {
    try {
      await this.leaveLine(ticket);
    } catch (error) {
      await this.leaveLine(ticket).catch(() => undefined);
      throw error;
    }
  }

  /** Renews the lease every third of its length until stopped or lost. */
  private keepRenewed(lease: HeldLease): () => void {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const renew = async () => {
      try {
        const { numUpdatedRows } = await this.db
          .updateTable('chat_leases')
          .set({ expires_at: this.expiry })
          .where('chat_id', '=', lease.chatId)
          .where('owner', '=', lease.holder)
          .where('expires_at', '>', this.dialect.nowMs)
          .executeTakeFirst();
        if (numUpdatedRows === 0n) {
          this.logger.warn(`Lost the turn lock of chat ${lease.chatId}: its writes will be refused`);
          return;
        }
      } catch (error) {
        this.logger.warn(`Could not renew the turn lock of chat ${lease.chatId}: ${(error as Error).message}`);
      }
      schedule();
    };
    const schedule = () => {
      if (stopped) return;
      timer = setTimeout(() => void renew(), this.leaseMs / 3);
      timer.unref();
    };
    schedule();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }
}

/** Spreads the looks of instances that started waiting together. */
function jitter(ms: number): number {
  return Math.max(1, Math.round(ms * (0.75 + Math.random() * 0.5)));
}
