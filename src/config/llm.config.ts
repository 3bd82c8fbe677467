import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, IsUrl, Max, MaxLength, Min } from 'class-validator';
import {
  configSlice,
  emptyToUndefined,
  Environment,
  InvalidConfigError,
  readVariables,
  toInteger,
  LONGEST_TIMER_MS,
} from './env';
import { contextWindowOf, knownModelFamily } from './model-context-windows';

export type LlmProviderName = 'openai' | 'offline';
/** How untitled chats get a title after their first exchange. */
export type AutoTitleMode = 'first-message' | 'llm' | 'off';

/** Which LLM answers, how it is called, and what a context may hold. */
export interface LlmConfig {
  provider: LlmProviderName;
  openAiApiKey: string | undefined;
  /** Any OpenAI-compatible Chat Completions endpoint; OpenAI's own when undefined. */
  openAiBaseUrl: string | undefined;
  /** The model of new chats that name none. */
  defaultModel: string;
  timeoutMs: number;
  maxRetries: number;
  /** undefined: the model's own window where known, else DEFAULT_CONTEXT_TOKENS (model-context-windows.ts). */
  contextTokens: number | undefined;
  maxOutputTokens: number;
  /** The system prompt of chats that have none. */
  systemPrompt: string;
  /** Upstream LLM calls at once; more queue. */
  maxConcurrency: number;
  autoTitle: AutoTitleMode;
}

export const DEFAULT_LLM_MODEL = 'gpt-4.1-mini';
export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant. Answer clearly and concisely.';
/**
 * High enough that a burst one instance can carry (each call holds a socket and a few KB) never
 * queues: the limit is for a provider that must be protected, not for the service itself.
 */
export const DEFAULT_LLM_MAX_CONCURRENCY = 4096;

class LlmVariables {
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
  @MaxLength(200)
  @IsString()
  LLM_MODEL?: string;

  @IsOptional()
  @Transform(toInteger)
  @Max(LONGEST_TIMER_MS)
  @Min(1)
  @IsInt()
  LLM_TIMEOUT_MS?: number;

  @IsOptional()
  @Transform(toInteger)
  @Max(10)
  @Min(0)
  @IsInt()
  LLM_MAX_RETRIES?: number;

  @IsOptional()
  @Transform(toInteger)
  @Min(256)
  @IsInt()
  LLM_CONTEXT_TOKENS?: number;

  @IsOptional()
  @Transform(toInteger)
  @Min(1)
  @IsInt()
  LLM_MAX_OUTPUT_TOKENS?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @MaxLength(8000)
  @IsString()
  SYSTEM_PROMPT?: string;

  @IsOptional()
  @Transform(toInteger)
  @Min(1)
  @IsInt()
  LLM_MAX_CONCURRENCY?: number;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['first-message', 'llm', 'off'])
  AUTO_TITLE?: AutoTitleMode;
}

export function parseLlmConfig(env: Environment): LlmConfig {
  const vars = readVariables(LlmVariables, env);
  const defaultModel = vars.LLM_MODEL ?? DEFAULT_LLM_MODEL;
  const maxOutputTokens = vars.LLM_MAX_OUTPUT_TOKENS ?? 1024;
  // The reply's share must leave room for the conversation, or every turn of the default model fails.
  if (vars.LLM_CONTEXT_TOKENS !== undefined && vars.LLM_CONTEXT_TOKENS <= maxOutputTokens) {
    throw new InvalidConfigError(
      `Invalid configuration: LLM_CONTEXT_TOKENS=${vars.LLM_CONTEXT_TOKENS} must be larger than LLM_MAX_OUTPUT_TOKENS=${maxOutputTokens}`,
    );
  }
  const window = contextWindowOf(defaultModel);
  if (vars.LLM_CONTEXT_TOKENS === undefined && window <= maxOutputTokens) {
    const assumed = knownModelFamily(defaultModel) === undefined ? ', assumed for an unknown model' : '';
    throw new InvalidConfigError(
      `Invalid configuration: LLM_MAX_OUTPUT_TOKENS=${maxOutputTokens} must be smaller than the context window of LLM_MODEL="${defaultModel}" (${window} tokens${assumed}); lower it, or set LLM_CONTEXT_TOKENS to the model's window`,
    );
  }
  const openAiConfigured = vars.OPENAI_API_KEY !== undefined || vars.OPENAI_BASE_URL !== undefined;
  if (vars.LLM_PROVIDER === 'openai' && !openAiConfigured) {
    throw new InvalidConfigError(
      'Invalid configuration: LLM_PROVIDER="openai" needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a compatible server)',
    );
  }
  return {
    provider: vars.LLM_PROVIDER ?? (openAiConfigured ? 'openai' : 'offline'),
    openAiApiKey: vars.OPENAI_API_KEY,
    openAiBaseUrl: vars.OPENAI_BASE_URL,
    defaultModel,
    timeoutMs: vars.LLM_TIMEOUT_MS ?? 60_000,
    maxRetries: vars.LLM_MAX_RETRIES ?? 2,
    contextTokens: vars.LLM_CONTEXT_TOKENS,
    maxOutputTokens,
    systemPrompt: vars.SYSTEM_PROMPT ?? DEFAULT_SYSTEM_PROMPT,
    maxConcurrency: vars.LLM_MAX_CONCURRENCY ?? DEFAULT_LLM_MAX_CONCURRENCY,
    autoTitle: vars.AUTO_TITLE ?? 'first-message',
  };
}

export const llmConfig = configSlice('llm', parseLlmConfig);
