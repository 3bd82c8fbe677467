import { Inject } from '@nestjs/common';
import { registerAs } from '@nestjs/config';
import { readFileSync } from 'node:fs';
import proxyAddr from 'proxy-addr';
import { plainToInstance, Transform } from 'class-transformer';
import {
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
  ValidationError,
  validateSync,
} from 'class-validator';
import {
  ApiKey,
  assertDistinctKeys,
  InvalidApiKeysError,
  parseApiKeysFile,
  parseApiKeysVariable,
} from '../auth/api-keys';

export type LlmProviderName = 'openai' | 'offline';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'verbose';
export type LogFormat = 'json' | 'pretty';
/** How untitled chats get a title after their first exchange. */
export type AutoTitleMode = 'first-message' | 'llm' | 'off';
export type StorageSettings =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string }
  /** `url` may carry a password: show it through {@link describeStorage} only. */
  | { kind: 'postgres'; url: string };

/** Typed, validated settings. Read once at start-up from the environment (and `.env`). */
export interface AppConfig {
  port: number;
  host: string;
  llmProvider: LlmProviderName;
  openAiApiKey: string | undefined;
  openAiBaseUrl: string | undefined;
  llmModel: string;
  llmTimeoutMs: number;
  llmMaxRetries: number;
  /** undefined: the model's own window where known, else {@link DEFAULT_CONTEXT_TOKENS}. */
  llmContextTokens: number | undefined;
  llmMaxOutputTokens: number;
  systemPrompt: string;
  autoTitle: AutoTitleMode;
  /** Upstream LLM calls at once; more queue. */
  llmMaxConcurrency: number;
  /** Turns that may wait on (or run for) one chat in this instance; more get 429. */
  maxPendingTurnsPerChat: number;
  /** How long in-flight turns may finish after SIGTERM before they are aborted. */
  shutdownGraceMs: number;
  /**
   * Express's `trust proxy`: how many proxy hops, or which proxies (addresses, CIDRs, `loopback` …),
   * to believe about the client's address in X-Forwarded-For; false: the peer is the client.
   */
  trustProxy: number | string[] | false;
  /** Idle time after which a streamed response sends a `: ping` comment. */
  ssePingIntervalMs: number;
  storage: StorageSettings;
  /** How long a database chat lock outlives an instance that stopped renewing it (crashed). */
  chatLockLeaseMs: number;
  logLevel: LogLevel;
  /** `pretty` for people, `json` (one object a line) for log pipelines. */
  logFormat: LogFormat;
  /** Origins allowed to call from browsers; empty: no CORS headers. */
  corsOrigins: string[];
  /** Largest accepted JSON body, as body-parser reads it (`1mb`, `512kb`, bytes). */
  bodyLimit: string;
  /** Requests per client per window; 0 turns rate limiting off. */
  rateLimit: number;
  rateLimitWindowMs: number;
  /** Shared rate-limit counters, so limits hold across instances; in memory when unset. */
  redisUrl: string | undefined;
  /** Tenants' keys (hashed); empty: the service runs open, every caller in one tenant. */
  apiKeys: ApiKey[];
  /** How long an Idempotency-Key's outcome is kept and replayed. */
  idempotencyTtlMs: number;
}

export const DEFAULT_LLM_MODEL = 'gpt-4.1-mini';
export const DEFAULT_CONTEXT_TOKENS = 8192;
export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant. Answer clearly and concisely.';
/**
 * High enough that a burst one instance can carry (each call holds a socket and a few KB) never
 * queues: the limit is for a provider that must be protected, not for the service itself.
 */
export const DEFAULT_LLM_MAX_CONCURRENCY = 4096;

const emptyToUndefined = ({ value }: { value: unknown }) =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;
const toInteger = ({ value }: { value: unknown }) => {
  if (typeof value !== 'string') return value;
  if (value.trim() === '') return undefined;
  return /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
};

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/i;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `24h`, `30m`, `90s`, `500ms`, `1d`; a bare number is seconds. Validated by {@link DURATION} first. */
function durationMs(value: string): number {
  const [, amount, unit = 's'] = DURATION.exec(value.trim())!;
  return Number(amount) * DURATION_UNIT_MS[unit.toLowerCase()];
}

/** The environment as it arrives: every variable optional, strings to be parsed. */
class EnvironmentVariables {
  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(65535)
  PORT?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MinLength(1)
  HOST?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['openai', 'offline'])
  LLM_PROVIDER?: LlmProviderName;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  OPENAI_API_KEY?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  OPENAI_BASE_URL?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MaxLength(200)
  LLM_MODEL?: string;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  LLM_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  @Max(10)
  LLM_MAX_RETRIES?: number;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(256)
  LLM_CONTEXT_TOKENS?: number;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  LLM_MAX_OUTPUT_TOKENS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  @MaxLength(8000)
  SYSTEM_PROMPT?: string;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(10)
  SSE_PING_INTERVAL_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['first-message', 'llm', 'off'])
  AUTO_TITLE?: AutoTitleMode;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['json', 'pretty'])
  LOG_FORMAT?: LogFormat;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  LLM_MAX_CONCURRENCY?: number;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(1)
  MAX_PENDING_TURNS_PER_CHAT?: number;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  SHUTDOWN_GRACE_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  CORS_ORIGINS?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(/^\d+(b|kb|mb)?$/i, { message: 'BODY_LIMIT must be a size such as 1mb, 512kb or 100000' })
  BODY_LIMIT?: string;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(0)
  RATE_LIMIT?: number;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(1000)
  RATE_LIMIT_WINDOW_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['redis', 'rediss'] })
  REDIS_URL?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  DATABASE_URL?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  API_KEYS?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  API_KEYS_FILE?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @Matches(DURATION, { message: 'IDEMPOTENCY_TTL must be a duration such as 24h, 30m, 90s or 86400 (seconds)' })
  IDEMPOTENCY_TTL?: string;

  @IsOptional()
  @Transform(toInteger)
  @IsInt()
  @Min(500)
  CHAT_LOCK_LEASE_MS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  TRUST_PROXY?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['error', 'warn', 'info', 'debug', 'verbose'])
  LOG_LEVEL?: LogLevel;
}

/** A configuration problem, phrased as one line that names the variable. */
export class InvalidConfigError extends Error {
  override readonly name = 'InvalidConfigError';
}

function describeErrors(errors: ValidationError[], env: Record<string, unknown>): string {
  return errors
    .map((error) => {
      const reasons = Object.values(error.constraints ?? {}).join(', ');
      return `${error.property}=${JSON.stringify(env[error.property])} is invalid: ${reasons}`;
    })
    .join('; ');
}

function parseStorage(databaseUrl: string | undefined): StorageSettings {
  if (databaseUrl === undefined) return { kind: 'memory' };
  const refuse = (reason: string) =>
    new InvalidConfigError(`Invalid configuration: DATABASE_URL=${JSON.stringify(redact(databaseUrl))} ${reason}`);
  if (databaseUrl.startsWith('sqlite:')) {
    // `sqlite:///abs/file.db` (URL form) and `sqlite:./file.db` both name a file path.
    const path = databaseUrl.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path.trim() === '') throw refuse('names no file: use sqlite:<path>');
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
  throw refuse('is neither sqlite:<path> nor a postgres:// URL (unset it for in-memory storage)');
}

/** The URL with any password replaced, for messages and logs. */
function redact(databaseUrl: string): string {
  return databaseUrl.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):[^@/?#]*@/i, '$1:***@');
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

/** A key must outlive the requests that hold it, or a repeat could run beside its first request. */
function parseIdempotencyTtl(value = '24h'): number {
  const ttlMs = durationMs(value);
  if (ttlMs < 60_000) {
    throw new InvalidConfigError(`Invalid configuration: IDEMPOTENCY_TTL=${JSON.stringify(value)} must be at least 1m`);
  }
  return ttlMs;
}

function parseApiKeys(variable: string | undefined, file: string | undefined): ApiKey[] {
  try {
    const keys = [
      ...(variable === undefined ? [] : parseApiKeysVariable(variable)),
      ...(file === undefined ? [] : parseApiKeysFile(readApiKeysFile(file))),
    ];
    assertDistinctKeys(keys);
    return keys;
  } catch (error) {
    if (error instanceof InvalidApiKeysError) throw new InvalidConfigError(`Invalid configuration: ${error.message}`);
    throw error;
  }
}

function readApiKeysFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new InvalidApiKeysError(`API_KEYS_FILE=${JSON.stringify(path)} cannot be read (${(error as Error).message})`);
  }
}

/**
 * A hop count (`1`: the load balancer in front), or comma-separated addresses, CIDRs and the names
 * `loopback`, `linklocal` and `uniquelocal`, as Express's `trust proxy` takes them. `true` (trust
 * every hop) is refused: any client could then name its own address.
 */
function parseTrustProxy(value: string | undefined): number | string[] | false {
  if (value === undefined) return false;
  if (/^\d+$/.test(value.trim())) return Number(value);
  const proxies = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  try {
    proxyAddr.compile(proxies);
  } catch (error) {
    throw new InvalidConfigError(
      `Invalid configuration: TRUST_PROXY=${JSON.stringify(value)} is invalid: ${(error as Error).message}; ` +
        'use a hop count or addresses, CIDRs, loopback, linklocal or uniquelocal',
    );
  }
  return proxies;
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

/** Validates the environment and turns it into settings; throws {@link InvalidConfigError}. */
export function parseAppConfig(env: Record<string, string | undefined>): AppConfig {
  const vars = plainToInstance(EnvironmentVariables, { ...env });
  const errors = validateSync(vars, { skipMissingProperties: false });
  if (errors.length > 0) {
    throw new InvalidConfigError(`Invalid configuration: ${describeErrors(errors, env)}`);
  }
  const maxOutputTokens = vars.LLM_MAX_OUTPUT_TOKENS ?? 1024;
  if (vars.LLM_CONTEXT_TOKENS !== undefined && vars.LLM_CONTEXT_TOKENS <= maxOutputTokens) {
    throw new InvalidConfigError(
      `Invalid configuration: LLM_CONTEXT_TOKENS=${vars.LLM_CONTEXT_TOKENS} must be larger than LLM_MAX_OUTPUT_TOKENS=${maxOutputTokens}`,
    );
  }
  const openAiConfigured = vars.OPENAI_API_KEY !== undefined || vars.OPENAI_BASE_URL !== undefined;
  if (vars.LLM_PROVIDER === 'openai' && !openAiConfigured) {
    throw new InvalidConfigError(
      'Invalid configuration: LLM_PROVIDER="openai" needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a compatible server)',
    );
  }
  return {
    port: vars.PORT ?? 3000,
    host: vars.HOST ?? '0.0.0.0',
    llmProvider: vars.LLM_PROVIDER ?? (openAiConfigured ? 'openai' : 'offline'),
    openAiApiKey: vars.OPENAI_API_KEY,
    openAiBaseUrl: vars.OPENAI_BASE_URL,
    llmModel: vars.LLM_MODEL ?? DEFAULT_LLM_MODEL,
    llmTimeoutMs: vars.LLM_TIMEOUT_MS ?? 60_000,
    llmMaxRetries: vars.LLM_MAX_RETRIES ?? 2,
    llmContextTokens: vars.LLM_CONTEXT_TOKENS,
    llmMaxOutputTokens: maxOutputTokens,
    systemPrompt: vars.SYSTEM_PROMPT ?? DEFAULT_SYSTEM_PROMPT,
    ssePingIntervalMs: vars.SSE_PING_INTERVAL_MS ?? 15_000,
    trustProxy: parseTrustProxy(vars.TRUST_PROXY),
    llmMaxConcurrency: vars.LLM_MAX_CONCURRENCY ?? DEFAULT_LLM_MAX_CONCURRENCY,
    maxPendingTurnsPerChat: vars.MAX_PENDING_TURNS_PER_CHAT ?? 32,
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS ?? 10_000,
    autoTitle: vars.AUTO_TITLE ?? 'first-message',
    storage: parseStorage(vars.DATABASE_URL),
    chatLockLeaseMs: vars.CHAT_LOCK_LEASE_MS ?? 30_000,
    logLevel: vars.LOG_LEVEL ?? 'info',
    logFormat: vars.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json'),
    corsOrigins: parseCorsOrigins(vars.CORS_ORIGINS),
    bodyLimit: vars.BODY_LIMIT ?? '1mb',
    rateLimit: vars.RATE_LIMIT ?? 600,
    rateLimitWindowMs: vars.RATE_LIMIT_WINDOW_MS ?? 60_000,
    redisUrl: vars.REDIS_URL,
    apiKeys: parseApiKeys(vars.API_KEYS, vars.API_KEYS_FILE),
    idempotencyTtlMs: parseIdempotencyTtl(vars.IDEMPOTENCY_TTL),
  };
}

/** The `@nestjs/config` namespace: parsed when the application is created. */
export const appConfig = registerAs('app', (): AppConfig => parseAppConfig(process.env));

/** Injects the typed settings: `constructor(@InjectAppConfig() config: AppConfig)`. */
export const InjectAppConfig = () => Inject(appConfig.KEY);
