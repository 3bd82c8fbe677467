import { Transform } from 'class-transformer';
import { IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { messageOf } from '../common/errors/error-message';
import {
  cannotStartWith,
  configSlice,
  emptyToUndefined,
  Environment,
  InvalidConfigError,
  readVariables,
  refuse,
  toInteger,
  LONGEST_TIMER_MS,
  withoutPassword,
} from './env';

export type StorageSettings =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string }
  /** `url` may carry a password: show it through {@link describeStorage} only. */
  | { kind: 'postgres'; url: string };

/** Where chats are kept, and the state instances share. */
export interface StorageConfig {
  database: StorageSettings;
  /** How long a database chat lock outlives an instance that stopped renewing it (crashed). */
  chatLockLeaseMs: number;
  /**
   * Redis, for what instances share beyond the database: rate-limit counters, running turns' events
   * (for resumes on any instance) and stop requests. Unset: kept in this instance's memory.
   */
  redisUrl: string | undefined;
}

class StorageVariables {
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DATABASE_URL?: string;

  @IsOptional()
  @Transform(toInteger)
  @Max(LONGEST_TIMER_MS)
  @Min(500)
  @IsInt()
  CHAT_LOCK_LEASE_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  REDIS_URL?: string;
}

function parseDatabaseUrl(databaseUrl: string | undefined): StorageSettings {
  if (databaseUrl === undefined) return { kind: 'memory' };
  if (databaseUrl.startsWith('sqlite:')) {
    // `sqlite:///abs/file.db` (URL form) and `sqlite:./file.db` both name a file path.
    const path = databaseUrl.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path.trim() === '')
      throw refuse('DATABASE_URL', withoutPassword(databaseUrl), 'names no file: use sqlite:<path>');
    return { kind: 'sqlite', path };
  }
  let url: URL | undefined;
  try {
    url = new URL(databaseUrl);
  } catch {
    url = undefined;
  }
  if (url && (url.protocol === 'postgres:' || url.protocol === 'postgresql:'))
    return { kind: 'postgres', url: databaseUrl };
  if (!url && /^postgres(ql)?:\/\//i.test(databaseUrl)) {
    throw refuse(
      'DATABASE_URL',
      withoutPassword(databaseUrl),
      'is not a valid URL; if its user name or password holds / : @ # or ?, percent-encode them',
    );
  }
  throw refuse(
    'DATABASE_URL',
    withoutPassword(databaseUrl),
    'is neither sqlite:<path> nor a postgres:// URL (unset it for in-memory storage)',
  );
}

/**
 * Why the database DATABASE_URL names could not be opened, or brought up to date, as the one line
 * start-up stops with. The URL's password is masked, in the reason too (a driver may quote the URL
 * it was given).
 */
export function unusableDatabase(
  storage: Exclude<StorageSettings, { kind: 'memory' }>,
  error: unknown,
  failed: 'opened' | 'migrated' = 'opened',
): InvalidConfigError {
  const url = storage.kind === 'sqlite' ? `sqlite:${storage.path}` : storage.url;
  const reason = messageOf(error).replaceAll(url, withoutPassword(url));
  return cannotStartWith('DATABASE_URL', withoutPassword(url), `cannot be ${failed}: ${reason}`);
}

/** Which storage the settings name, for the start-up line: never shows a password. */
export function describeStorage(storage: StorageSettings): string {
  switch (storage.kind) {
    case 'memory':
      return 'in-memory';
    case 'sqlite':
      return `sqlite (${storage.path})`;
    case 'postgres': {
      const url = new URL(storage.url);
      const host = url.hostname === '' ? 'localhost' : url.hostname;
      return `postgres (${host}:${url.port || '5432'}${url.pathname})`;
    }
  }
}

/** The database a Redis URL names, as ioredis reads it (with parseInt): its path, else `?db=`. */
function redisDatabaseOf(url: URL): string | null {
  return url.pathname.length > 1 ? url.pathname.slice(1) : url.searchParams.get('db');
}

/**
 * Redis refused to select the database REDIS_URL names (beyond its `databases` setting, or any but
 * 0 in a cluster), as the one line start-up stops with; the URL's password is masked.
 */
export function missingRedisDatabase(redisUrl: string, error: unknown): InvalidConfigError {
  const db = redisDatabaseOf(new URL(redisUrl));
  return cannotStartWith(
    'REDIS_URL',
    withoutPassword(redisUrl),
    `names database ${db}, which Redis does not have: ${messageOf(error)}`,
  );
}

/**
 * A `redis://` or `rediss://` URL as ioredis reads it (WHATWG URL rules: a Docker Compose host
 * such as `redis_cache` is a host, and a password may hold any character, percent-encoded).
 */
function parseRedisUrl(redisUrl: string | undefined): string | undefined {
  if (redisUrl === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(redisUrl);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
    throw refuse(
      'REDIS_URL',
      withoutPassword(redisUrl),
      'is not a URL of the form redis://[user:password@]host[:port][/db] (or rediss://)',
    );
  }
  // A name would select NaN, which Redis refuses, and the process crashes on the unhandled reply.
  const db = redisDatabaseOf(url);
  if (db !== null && !/^\d+$/.test(db)) {
    throw refuse(
      'REDIS_URL',
      withoutPassword(redisUrl),
      `names database ${JSON.stringify(db)}: a Redis database is a number, 0 or more (redis://host:6379/0)`,
    );
  }
  return redisUrl;
}

export function parseStorageConfig(env: Environment): StorageConfig {
  const vars = readVariables(StorageVariables, env);
  return {
    database: parseDatabaseUrl(vars.DATABASE_URL),
    chatLockLeaseMs: vars.CHAT_LOCK_LEASE_MS ?? 30_000,
    redisUrl: parseRedisUrl(vars.REDIS_URL),
  };
}

export const storageConfig = configSlice('storage', parseStorageConfig);
