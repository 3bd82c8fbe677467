import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, Min, MinLength } from 'class-validator';
import proxyAddr from 'proxy-addr';
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
} from './env';

/** Where the service listens and how its HTTP edge behaves. */
export interface HttpConfig {
  port: number;
  host: string;
  /** Origins allowed to call from browsers; empty: no CORS headers. */
  corsOrigins: string[];
  /** Largest accepted JSON body, as body-parser reads it (`1mb`, `512kb`, bytes). */
  bodyLimit: string;
  /** The same for `POST /chats/import` alone, whose bodies carry whole chats. */
  importBodyLimit: string;
  /**
   * Express's `trust proxy`: how many proxy hops, or which proxies (addresses, CIDRs, `loopback` …),
   * to believe about the client's address in X-Forwarded-For; false: the peer is the client.
   */
  trustProxy: number | string[] | false;
  /** Idle time after which a streamed response sends a `: ping` comment. */
  ssePingIntervalMs: number;
  /** How long an idle keep-alive connection stays open: longer than any balancer in front keeps one. */
  keepAliveTimeoutMs: number;
  /** How long in-flight turns may finish after SIGTERM before they are aborted. */
  shutdownGraceMs: number;
  /** `continue`: a turn outlives its client's connection; `stop`: a client that leaves stops its turn. */
  clientDisconnect: 'continue' | 'stop';
}

/** A body size as body-parser reads it, above 0: a limit of 0 refuses every body, `{}` too. */
const BODY_SIZE = /^0*[1-9]\d*(b|kb|mb)?$/i;

class HttpVariables {
  @IsOptional()
  @Transform(toInteger)
  @Max(65535)
  @Min(0)
  @IsInt()
  PORT?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @MinLength(1)
  @IsString()
  HOST?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  CORS_ORIGINS?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(BODY_SIZE, { message: 'BODY_LIMIT must be a size above 0, such as 1mb, 512kb or 100000' })
  BODY_LIMIT?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(BODY_SIZE, { message: 'IMPORT_BODY_LIMIT must be a size above 0, such as 16mb, 512kb or 100000' })
  IMPORT_BODY_LIMIT?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  TRUST_PROXY?: string;

  @IsOptional()
  @Transform(toInteger)
  @Max(LONGEST_TIMER_MS)
  @Min(10)
  @IsInt()
  SSE_PING_INTERVAL_MS?: number;

  @IsOptional()
  @Transform(toInteger)
  @Max(LONGEST_TIMER_MS)
  // Node announces it in whole seconds: under one, it would tell clients `timeout=0`.
  @Min(1000)
  @IsInt()
  KEEP_ALIVE_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(toInteger)
  @Max(LONGEST_TIMER_MS)
  @Min(0)
  @IsInt()
  SHUTDOWN_GRACE_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['continue', 'stop'], { message: 'CLIENT_DISCONNECT must be continue or stop' })
  CLIENT_DISCONNECT?: 'continue' | 'stop';
}

/** Comma-separated origins (`https://app.example.com,http://localhost:5173`), each a URL origin. */
function parseCorsOrigins(value: string | undefined): string[] {
  if (value === undefined) return [];
  const origins = value
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (parsed?.origin !== origin) {
      throw new InvalidConfigError(
        `Invalid configuration: CORS_ORIGINS entry ${JSON.stringify(origin)} is not an origin such as https://app.example.com`,
      );
    }
  }
  return origins;
}

/** More hops than any real chain of proxies: a larger count trusts every hop, as `true` would. */
const MAX_TRUSTED_HOPS = 10;
const TRUSTS_EVERY_HOP = 'trusts every hop, so any client could name its own address in X-Forwarded-For';

/**
 * A hop count (`1`: the load balancer in front), or comma-separated addresses, CIDRs and the names
 * `loopback`, `linklocal` and `uniquelocal`, as Express's `trust proxy` takes them. `true` (trust
 * every hop) is refused, and so is a hop count no real chain of proxies has.
 */
function parseTrustProxy(value: string | undefined): number | string[] | false {
  if (value === undefined) return false;
  if (/^\d+$/.test(value.trim())) {
    const hops = Number(value);
    if (hops > MAX_TRUSTED_HOPS) {
      throw refuse(
        'TRUST_PROXY',
        value,
        `${TRUSTS_EVERY_HOP}; use the number of proxies in front (at most ${MAX_TRUSTED_HOPS}) or their addresses`,
      );
    }
    return hops;
  }
  if (value.trim().toLowerCase() === 'true') {
    throw refuse('TRUST_PROXY', value, `${TRUSTS_EVERY_HOP}; use the number of proxies in front or their addresses`);
  }
  const proxies = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  try {
    proxyAddr.compile(proxies);
  } catch (error) {
    throw refuse(
      'TRUST_PROXY',
      value,
      `is invalid: ${(error as Error).message}; use a hop count or addresses, CIDRs, loopback, linklocal or uniquelocal`,
    );
  }
  return proxies;
}

/**
 * Why the service could not listen where HOST and PORT say, as the one line start-up stops with;
 * undefined for a failure that is no setting's.
 */
export function unusableAddress(
  error: NodeJS.ErrnoException,
  { host, port }: HttpConfig,
): InvalidConfigError | undefined {
  switch (error.code) {
    case 'EADDRINUSE':
      return cannotStartWith('PORT', String(port), `is in use on ${host}: another process listens there`);
    case 'EACCES':
      return cannotStartWith(
        'PORT',
        String(port),
        'may not be listened on by this user (ports below 1024 need privileges)',
      );
    case 'EADDRNOTAVAIL':
      return cannotStartWith('HOST', host, 'is not an address of this machine');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return cannotStartWith('HOST', host, `does not resolve to an address (${error.code})`);
    default:
      return undefined;
  }
}

export function parseHttpConfig(env: Environment): HttpConfig {
  const vars = readVariables(HttpVariables, env);
  return {
    port: vars.PORT ?? 3000,
    host: vars.HOST ?? '0.0.0.0',
    corsOrigins: parseCorsOrigins(vars.CORS_ORIGINS),
    bodyLimit: vars.BODY_LIMIT ?? '1mb',
    importBodyLimit: vars.IMPORT_BODY_LIMIT ?? '16mb',
    trustProxy: parseTrustProxy(vars.TRUST_PROXY),
    ssePingIntervalMs: vars.SSE_PING_INTERVAL_MS ?? 15_000,
    // Node 20 closes idle connections after 5 s, before the 60 s a balancer (AWS ALB, nginx)
    // keeps its own open: a request the balancer sends on one as it closes fails with a 502.
    keepAliveTimeoutMs: vars.KEEP_ALIVE_TIMEOUT_MS ?? 65_000,
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS ?? 10_000,
    clientDisconnect: vars.CLIENT_DISCONNECT ?? 'continue',
  };
}

export const httpConfig = configSlice('http', parseHttpConfig);
