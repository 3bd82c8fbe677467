import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerGuard, ThrottlerModule, ThrottlerStorage } from '@nestjs/throttler';
// The throttler's own address normalization (its default tracker's), which its index does not export.
import { normalizeIp } from '@nestjs/throttler/dist/ip';
import type { RedisOptions } from 'ioredis';
import { RequestWithTenant } from '../auth/tenant';
import { limitsConfig, LimitsConfig } from '../config/limits.config';
import { storageConfig, StorageConfig } from '../config/storage.config';
import { FailOpenThrottlerStorage } from './fail-open-throttler-storage';
import { rateLimitDetail } from './rate-limit-response';

const RATE_LIMIT_STORAGE = Symbol('RATE_LIMIT_STORAGE');

/**
 * Every request waits on its counter, so a Redis that is down or hangs must fail the count within
 * a second (the storage then lets the request through), not after ~10 s of retries. The offline
 * queue stays on: without it, the counts sent while the client first connects would all fail,
 * and the first requests after start-up would go uncounted. The client connects at the first
 * count: a start-up that stops on REDIS_URL (the turn relay checks its database) logs nothing of it.
 */
const FAIL_FAST: RedisOptions = {
  maxRetriesPerRequest: 0,
  connectTimeout: 1000,
  commandTimeout: 1000,
  lazyConnect: true,
};

function redisStorage(redisUrl: string): FailOpenThrottlerStorage {
  const redis = new ThrottlerStorageRedisService(redisUrl, FAIL_FAST);
  const storage = new FailOpenThrottlerStorage(redis);
  // ioredis keeps reconnecting; each failed attempt is an error event, logged with the rest.
  redis.redis.on('error', (error: Error) => storage.warn(`Redis: ${error.message}`));
  return storage;
}

/** Counters in Redis when REDIS_URL is set, so limits hold across instances; else in memory. */
@Module({
  providers: [
    {
      provide: RATE_LIMIT_STORAGE,
      inject: [storageConfig.KEY],
      // Nest calls the storage's onModuleDestroy, which closes the Redis connection.
      useFactory: ({ redisUrl }: StorageConfig): ThrottlerStorage | null => (redisUrl ? redisStorage(redisUrl) : null),
    },
  ],
  exports: [RATE_LIMIT_STORAGE],
})
class RateLimitStorageModule {}

/**
 * RATE_LIMIT requests per RATE_LIMIT_WINDOW_MS per client, whatever the route: the caller's tenant
 * once API keys are configured, else the client address (an IPv6 address by its /64, as one host
 * usually holds the whole block; an IPv4 address mapped into IPv6 as the IPv4 one). Over the
 * limit: 429 with Retry-After. Routes marked `SkipRateLimit()` are not counted.
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      imports: [RateLimitStorageModule],
      inject: [limitsConfig.KEY, RATE_LIMIT_STORAGE],
      useFactory: (config: LimitsConfig, storage: ThrottlerStorage | null) => ({
        throttlers: [{ ttl: config.rateLimitWindowMs, limit: Math.max(config.rateLimit, 1) }],
        skipIf: () => config.rateLimit === 0,
        storage: storage ?? undefined,
        errorMessage: rateLimitDetail(config),
        getTracker: (request: Record<string, unknown>) => {
          const { tenant, ip } = request as RequestWithTenant & { ip?: string };
          return tenant?.authenticated ? `tenant:${tenant.id}` : `ip:${normalizeIp(ip ?? '')}`;
        },
        // The throttler's default key is per route: a client would get RATE_LIMIT on each.
        generateKey: (_context: unknown, tracker: string, throttler: string) => `${throttler}:${tracker}`,
      }),
    }),
  ],
  providers: [{ provide: APP_GUARD, useClass: ThrottlerGuard }],
})
export class RateLimitModule {}
