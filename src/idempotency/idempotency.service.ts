import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import stringify from 'safe-stable-stringify';
import { messageOf } from '../common/errors/error-message';
import { limitsConfig, LimitsConfig } from '../config/limits.config';
import { storageConfig, StorageConfig } from '../config/storage.config';
import { IdempotencyKeyInUseError, IdempotencyKeyReusedError } from './idempotency-errors';
import { IdempotencyScope, IdempotencyStore } from './idempotency.store';

const SWEEP_INTERVAL_MS = 10 * 60_000;

/**
 * A request's hold on its Idempotency-Key, from its claim until it completes or stops. While
 * held, the claim's lease is renewed; should it lapse anyway (the instance died or could not
 * reach the storage for a whole lease), the key passes to a repeat, this hold's writes are void,
 * and its next progress record throws.
 * Requests without a key get {@link NO_KEY}, which remembers nothing.
 */
export interface HeldIdempotencyKey {
  /** What an earlier attempt recorded before it stopped; null for a first attempt. */
  readonly progress: string | null;
  /**
   * Records `progress` (kept as JSON) for a repeat to resume from. Throws IdempotencyKeyInUseError
   * when the key has passed to a repeat meanwhile: the repeat does the work, so this request must
   * not store any of it.
   */
  recordProgress(progress: unknown): Promise<void>;
  /**
   * Keeps `outcome` (as JSON) for repeats. Never throws: the work is done, and a key left running lapses
   * with its lease, after which a repeat finds the work's result in the chat rather than redoing it.
   */
  complete(outcome: unknown): Promise<void>;
  /** Lets go without an outcome (a no-op after `complete`): the next repeat resumes. Never throws. */
  release(): Promise<void>;
}

export const NO_KEY: HeldIdempotencyKey = {
  progress: null,
  recordProgress: async () => undefined,
  complete: async () => undefined,
  release: async () => undefined,
};

export type IdempotentStart = { kind: 'replay'; outcome: string } | { kind: 'run'; held: HeldIdempotencyKey };

/** Idempotency-Key handling for any route: claims, replays, leases and expiry. */
@Injectable()
export class IdempotencyService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(IdempotencyService.name);
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly store: IdempotencyStore,
    @limitsConfig.inject() private readonly limits: LimitsConfig,
    @storageConfig.inject() private readonly storage: StorageConfig,
  ) {}

  /**
   * Starts a request that may carry a key (`scope` undefined: it has none). Throws when the key
   * was used with another `body` (422) or its first request still runs (409).
   */
  async start(scope: IdempotencyScope | undefined, body: unknown): Promise<IdempotentStart> {
    if (!scope) return { kind: 'run', held: NO_KEY };
    const leaseMs = this.storage.chatLockLeaseMs;
    const holder = randomUUID();
    const claim = await this.store.claim(scope, {
      holder,
      fingerprint: createHash('sha256')
        .update(stringify(body) ?? 'null')
        .digest('base64url'),
      ttlMs: this.limits.idempotencyTtlMs,
      leaseMs,
      now: Date.now(),
    });
    switch (claim.kind) {
      case 'mismatch':
        throw new IdempotencyKeyReusedError();
      case 'in-progress':
        throw new IdempotencyKeyInUseError();
      case 'replay':
        return { kind: 'replay', outcome: claim.response };
      case 'new':
      case 'resume':
        return {
          kind: 'run',
          held: this.hold(scope, holder, claim.kind === 'resume' ? claim.progress : null, leaseMs),
        };
    }
  }

  private hold(scope: IdempotencyScope, holder: string, progress: string | null, leaseMs: number): HeldIdempotencyKey {
    const renewal = setInterval(() => {
      this.store.renew(scope, holder, Date.now() + leaseMs).catch((error: unknown) => this.warn('renew', error));
    }, leaseMs / 3);
    renewal.unref();
    let settled = false;
    const settle = async (finish: () => Promise<void>) => {
      if (settled) return;
      settled = true;
      clearInterval(renewal);
      await finish();
    };
    return {
      progress,
      recordProgress: async (next) => {
        if (!(await this.store.recordProgress(scope, holder, JSON.stringify(next)))) {
          throw new IdempotencyKeyInUseError();
        }
      },
      complete: (outcome) =>
        settle(() => this.store.complete(scope, holder, JSON.stringify(outcome))).catch((error: unknown) =>
          this.warn('complete', error),
        ),
      // A key left running lapses with its lease, so a failed release only delays a repeat.
      release: () =>
        settle(() => this.store.release(scope, holder)).catch((error: unknown) => this.warn('release', error)),
    };
  }

  onModuleInit(): void {
    this.sweeper = setInterval(() => {
      this.store.deleteExpired(Date.now()).catch((error: unknown) => this.warn('expire', error));
    }, SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.sweeper);
  }

  private warn(what: string, error: unknown): void {
    this.logger.warn(`Could not ${what} idempotency keys: ${messageOf(error)}`);
  }
}
