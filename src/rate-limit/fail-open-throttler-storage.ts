import { Logger, OnModuleDestroy } from '@nestjs/common';
import { ThrottlerStorage } from '@nestjs/throttler';
import { messageOf } from '../common/errors/error-message';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/** At most one warning per this long, however many requests find the store failing. */
export const STORE_WARNING_INTERVAL_MS = 60_000;

/** A request counted by nobody: the throttler lets it through. */
const UNCOUNTED: ThrottlerStorageRecord = { totalHits: 0, timeToExpire: 0, isBlocked: false, timeToBlockExpire: 0 };

/**
 * Rate-limit counters that fail open: while the store (Redis) fails, requests go through
 * uncounted rather than fail, so an outage of the limiter's store is not an outage of the API.
 * Failures are logged at most once per {@link STORE_WARNING_INTERVAL_MS}, with how many there were.
 */
export class FailOpenThrottlerStorage implements ThrottlerStorage, OnModuleDestroy {
  private lastWarningAt = Number.NEGATIVE_INFINITY;
  private unreported = 0;

  constructor(
    private readonly store: ThrottlerStorage & Partial<OnModuleDestroy>,
    private readonly logger = new Logger('RateLimit'),
  ) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    try {
      return await this.store.increment(key, ttl, limit, blockDuration, throttlerName);
    } catch (error) {
      this.warn(`requests go through uncounted: ${messageOf(error)}`);
      return UNCOUNTED;
    }
  }

  /** Also for the store's own connection errors, so a store that is down logs once a minute. */
  warn(message: string): void {
    this.unreported++;
    const now = Date.now();
    if (now - this.lastWarningAt < STORE_WARNING_INTERVAL_MS) return;
    const more = this.unreported > 1 ? ` (${this.unreported - 1} more failures since the last warning)` : '';
    this.logger.warn(`Rate-limit store failing; ${message}${more}`);
    this.lastWarningAt = now;
    this.unreported = 0;
  }

  onModuleDestroy(): void | Promise<void> {
    return this.store.onModuleDestroy?.();
  }
}
