import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { LlmError, LlmTimeoutError, LlmUnavailableError, LlmUpstreamError } from './llm-errors';
import { LlmProvider, LlmReply, LlmRequest } from './llm-provider';

export interface OpenAiLlmOptions {
  apiKey: string | undefined;
  /** Any OpenAI-compatible Chat Completions endpoint; OpenAI's own when undefined. */
  baseUrl: string | undefined;
  timeoutMs: number;
  maxRetries: number;
}

const OPENAI_API_URL = 'https://api.openai.com/v1';
const UNAVAILABLE_STATUSES = new Set([429, 502, 503, 529]);
const TIMEOUT_STATUSES = new Set([408, 504]);
const TIMEOUT_DETAIL = 'The language model did not answer within LLM_TIMEOUT_MS.';

/** `Retry-After` as whole seconds, from either its delta-seconds or its HTTP-date form. */
function retryAfterSeconds(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  const seconds = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, Math.ceil(seconds)) : undefined;
}

/** Maps whatever the `openai` client threw to the contract's upstream failures. */
function toLlmError(error: unknown): unknown {
  if (error instanceof APIUserAbortError || error instanceof LlmError) return error;
  if (error instanceof APIConnectionTimeoutError) {
    return new LlmTimeoutError(TIMEOUT_DETAIL);
  }
  if (error instanceof APIConnectionError) {
    return new LlmUnavailableError(`The language model could not be reached: ${error.message}`);
  }
  if (error instanceof APIError && error.status !== undefined) {
    const detail = `The language model answered HTTP ${error.status}.`;
    if (TIMEOUT_STATUSES.has(error.status)) return new LlmTimeoutError(detail);
    if (UNAVAILABLE_STATUSES.has(error.status)) {
      return new LlmUnavailableError(detail, retryAfterSeconds(error.headers));
    }
    return new LlmUpstreamError(detail);
  }
  return new LlmUpstreamError('The language model sent a response that could not be read.');
}

/** Talks to OpenAI or any OpenAI-compatible server through the official client. */
export class OpenAiLlmProvider extends LlmProvider {
  readonly name = 'openai';
  private readonly client: OpenAI;
  /** OpenAI's own API wants the newer parameter; most compatible servers know only `max_tokens`. */
  private readonly officialApi: boolean;
  private readonly timeoutMs: number;

  constructor(options: OpenAiLlmOptions) {
    super();
    this.timeoutMs = options.timeoutMs;
    this.officialApi = new URL(options.baseUrl ?? OPENAI_API_URL).hostname === 'api.openai.com';
    this.client = new OpenAI({
      // Local servers often need no key, but the client insists on one.
      apiKey: options.apiKey ?? 'not-set',
      // Explicit, so the client never falls back to OPENAI_BASE_URL from process.env on its own.
      baseURL: options.baseUrl ?? OPENAI_API_URL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries,
    });
  }

  /** Where requests go, for start-up logs. */
  get endpoint(): string {
    return this.client.baseURL;
  }

  async complete({ model, messages, maxOutputTokens, signal }: LlmRequest): Promise<LlmReply> {
    // The client's timeout stops once the response headers arrive; without this one a server that
    // stalls mid-body would hold the turn (and the chat's lock) forever.
    const bodyDeadline = new AbortController();
    let bodyTimer: NodeJS.Timeout | undefined;
    let settled = false;
    let completion: OpenAI.Chat.Completions.ChatCompletion;
    try {
      const call = this.client.chat.completions.create(
        {
          model,
          messages: messages.map(({ role, content }) => ({ role, content })),
          ...(this.officialApi ? { max_completion_tokens: maxOutputTokens } : { max_tokens: maxOutputTokens }),
        },
        { signal: signal ? AbortSignal.any([signal, bodyDeadline.signal]) : bodyDeadline.signal },
      );
      call.asResponse().then(
        () => {
          if (!settled) bodyTimer = setTimeout(() => bodyDeadline.abort(), this.timeoutMs);
        },
        () => undefined,
      );
      completion = await call;
    } catch (error) {
      if (signal?.aborted) throw error instanceof APIUserAbortError ? error : new APIUserAbortError();
      if (bodyDeadline.signal.aborted) throw new LlmTimeoutError(TIMEOUT_DETAIL);
      throw toLlmError(error);
    } finally {
      settled = true;
      clearTimeout(bodyTimer);
    }
    const content = completion?.choices?.[0]?.message?.content;
    if (typeof content !== 'string') {
      throw new LlmUpstreamError('The language model sent a reply without content.');
    }
    return {
      content,
      model: typeof completion.model === 'string' ? completion.model : model,
      usage: completion.usage
        ? { promptTokens: completion.usage.prompt_tokens, completionTokens: completion.usage.completion_tokens }
        : null,
    };
  }
}
