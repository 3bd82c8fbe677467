import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { Stream } from 'openai/streaming';
import { LlmError, LlmTimeoutError, LlmUnavailableError, LlmUpstreamError } from './llm-errors';
import { LlmProvider, LlmRequest, LlmStreamPart, LlmUsage } from './llm-provider';
import { RequestBodyEncoder } from './request-body-encoder';
import { undiciFetch } from './undici-fetch';

export interface OpenAiLlmOptions {
  apiKey: string | undefined;
  /** Any OpenAI-compatible Chat Completions endpoint; OpenAI's own when undefined. */
  baseUrl: string | undefined;
  /** Until the response headers, then between two chunks of the streamed body. */
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
  if (error instanceof APIError) {
    // An `error` event in the middle of the stream.
    return new LlmUpstreamError('The language model reported an error while streaming its reply.');
  }
  return new LlmUpstreamError('The language model sent a response that could not be read.');
}

/**
 * The stream's chunks, each awaited for at most `ms`; on expiry the request is aborted and
 * LlmTimeoutError thrown. The client's own timeout ends with the response headers, so without this
 * a server that goes quiet mid-body would hold the turn (and the chat's lock) forever. Time the
 * consumer spends between chunks does not count.
 */
async function* withIdleTimeout<T>(stream: Stream<T>, ms: number): AsyncGenerator<T> {
  const chunks = stream[Symbol.asyncIterator]();
  let awaiting = false;
  let idle = false;
  // One timer for the whole stream, restarted for each chunk awaited rather than made anew.
  const timer = setTimeout(() => {
    if (!awaiting) return;
    idle = true;
    stream.controller.abort();
  }, ms);
  try {
    while (true) {
      awaiting = true;
      timer.refresh();
      let next: IteratorResult<T>;
      try {
        next = await chunks.next();
      } catch (error) {
        throw idle ? new LlmTimeoutError(TIMEOUT_DETAIL) : error;
      } finally {
        awaiting = false;
      }
      // The client ends an aborted stream quietly, as if it were complete.
      if (idle) throw new LlmTimeoutError(TIMEOUT_DETAIL);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    // A consumer that stops early cancels the request: the client aborts it on `return()`.
    await chunks.return?.();
  }
}

/** Talks to OpenAI or any OpenAI-compatible server through the official client. */
export class OpenAiLlmProvider extends LlmProvider {
  readonly name = 'openai';
  private readonly client: OpenAI;
  /** OpenAI's own API wants the newer parameter; most compatible servers know only `max_tokens`. */
  private readonly officialApi: boolean;
  private readonly timeoutMs: number;
  /** Request bodies, so a chat's turns do not encode the history they share again. */
  private readonly bodies = new RequestBodyEncoder();

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
      // The client would print raw upstream chunks (conversation text) to the console; failures are
      // reported through our own errors instead.
      logLevel: 'off',
      fetch: undiciFetch(),
    });
  }

  override describe(): string {
    return `openai at ${this.client.baseURL}`;
  }

  async *stream({ model, messages, maxOutputTokens, signal }: LlmRequest): AsyncGenerator<LlmStreamPart> {
    let answeredBy = model;
    let usage: LlmUsage | null = null;
    let sawChoices = false;
    try {
      // What `chat.completions.create` sends, with the history shared with the last turn copied.
      const rest = JSON.stringify({
        model,
        ...(this.officialApi ? { max_completion_tokens: maxOutputTokens } : { max_tokens: maxOutputTokens }),
        stream: true,
        stream_options: { include_usage: true },
      });
      const body = this.bodies.encode('{"messages":[', messages, `],${rest.slice(1)}`);
      const chunks = await this.client.post<Stream<ChatCompletionChunk>>('/chat/completions', {
        body,
        // The client sends bytes as they are, but labels them only when told.
        headers: { 'content-type': 'application/json' },
        stream: true,
        signal,
      });
      for await (const chunk of withIdleTimeout(chunks, this.timeoutMs)) {
        // The client may still hand out chunks that had arrived before the abort.
        signal?.throwIfAborted();
        if (typeof chunk.model === 'string' && chunk.model) answeredBy = chunk.model;
        if (chunk.usage) {
          usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
        }
        if (!Array.isArray(chunk.choices) || chunk.choices.length === 0) continue;
        sawChoices = true;
        const content = chunk.choices[0]?.delta?.content;
        if (content) yield { type: 'delta', content };
      }
      // An aborted stream ends without an error.
      signal?.throwIfAborted();
    } catch (error) {
      if (signal?.aborted) throw error instanceof APIUserAbortError ? error : new APIUserAbortError();
      throw toLlmError(error);
    }
    if (!sawChoices) throw new LlmUpstreamError('The language model sent a reply without choices.');
    yield { type: 'finish', model: answeredBy, usage };
  }
}
