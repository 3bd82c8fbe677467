import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ThrottlerStorage } from '@nestjs/throttler';
import type { RedisOptions } from 'ioredis';
import { storageConfig, StorageConfig } from '../config/storage.config';
import { FailOpenThrottlerStorage } from './fail-open-throttler-storage';
import { FixedWindowThrottlerStorage } from './fixed-window-throttler-storage';

export const RATE_LIMIT_STORAGE = Symbol('RATE_LIMIT_STORAGE');

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

/**
 * The rate limit's counters: in Redis when REDIS_URL is set, so limits hold across instances;
 * else in memory. Requests are counted by {@link rateLimitCheck}, before their bodies are read.
 */
@Module({
  imports: [DiscoveryModule],
  providers: [
    {
      provide: RATE_LIMIT_STORAGE,
      inject: [storageConfig.KEY],
      // Nest calls the storage's onModuleDestroy, which closes the Redis connection.
      useFactory: ({ redisUrl }: StorageConfig): ThrottlerStorage =>
        redisUrl ? redisStorage(redisUrl) : new FixedWindowThrottlerStorage(),
    },
  ],
  exports: [RATE_LIMIT_STORAGE],
})
export class RateLimitModule {}
