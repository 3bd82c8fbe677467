import { Transform } from 'class-transformer';
import { IsInt, IsOptional, Matches, Max, Min } from 'class-validator';
import {
  configSlice,
  emptyToUndefined,
  Environment,
  InvalidConfigError,
  readVariables,
  toInteger,
  LONGEST_TIMER_MS,
} from './env';

/** How much one client, one chat and one key may ask of the service, and for how long. */
export interface LimitsConfig {
  /** Requests per client per window; 0 turns rate limiting off. */
  rateLimit: number;
  rateLimitWindowMs: number;
  /** Turns that may wait on one chat in this instance, beside the one running; more get 429. */
  maxPendingTurnsPerChat: number;
  /** How long an Idempotency-Key's outcome is kept and replayed. */
  idempotencyTtlMs: number;
}

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/i;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

class LimitsVariables {
  @IsOptional()
  @Transform(toInteger)
  @Min(0)
  @IsInt()
  RATE_LIMIT?: number;

  @IsOptional()
  @Transform(toInteger)
  @Max(LONGEST_TIMER_MS)
  @Min(1000)
  @IsInt()
  RATE_LIMIT_WINDOW_MS?: number;

  @IsOptional()
  @Transform(toInteger)
  @Min(1)
  @IsInt()
  MAX_PENDING_TURNS_PER_CHAT?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(DURATION, { message: 'IDEMPOTENCY_TTL must be a duration such as 24h, 30m, 90s or 86400 (seconds)' })
  IDEMPOTENCY_TTL?: string;
}

/**
 * `24h`, `30m`, `90s`, `500ms`, `1d`; a bare number is seconds. A key must outlive the requests
 * that hold it, or a repeat could run beside its first request.
 */
function parseIdempotencyTtl(value = '24h'): number {
  const [, amount, unit = 's'] = DURATION.exec(value.trim())!;
  const ttlMs = Number(amount) * DURATION_UNIT_MS[unit.toLowerCase()];
  if (ttlMs < 60_000) {
    throw new InvalidConfigError(`Invalid configuration: IDEMPOTENCY_TTL=${JSON.stringify(value)} must be at least 1m`);
  }
  return ttlMs;
}

export function parseLimitsConfig(env: Environment): LimitsConfig {
  const vars = readVariables(LimitsVariables, env);
  return {
    rateLimit: vars.RATE_LIMIT ?? 600,
    rateLimitWindowMs: vars.RATE_LIMIT_WINDOW_MS ?? 60_000,
    maxPendingTurnsPerChat: vars.MAX_PENDING_TURNS_PER_CHAT ?? 32,
    idempotencyTtlMs: parseIdempotencyTtl(vars.IDEMPOTENCY_TTL),
  };
}

export const limitsConfig = configSlice('limits', parseLimitsConfig);
