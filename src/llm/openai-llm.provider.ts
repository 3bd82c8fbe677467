import { createParser } from 'eventsource-parser';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { Readable } from 'node:stream';
import { withoutPassword } from '../config/env';
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
const NUMBER = /^\d+(\.\d+)?$/;
/**
 * Refusals whose message the logs keep: a key refused, an account or a model out of reach. Their
 * words are about the service's set-up; a 400's may quote the request, so what users wrote.
 */
const SETUP_STATUSES = new Set([401, 403, 404]);
/** How many characters of such a message are logged. */
const MAX_LOGGED_MESSAGE = 500;

/**
 * When to try again, in whole seconds: from `Retry-After` in its delta-seconds or its HTTP-date
 * form, else (absent or no time) from `retry-after-ms` (OpenAI's and Azure's, which some send alone).
 */
function retryAfterSeconds(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after')?.trim() ?? '';
  const ms = headers?.get('retry-after-ms')?.trim() ?? '';
  let seconds = NUMBER.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  if (!Number.isFinite(seconds) && NUMBER.test(ms)) seconds = Number(ms) / 1000;
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
    // The upstream's words on its set-up go to the logs (as the cause), never to clients.
    if (!SETUP_STATUSES.has(error.status)) return new LlmUpstreamError(detail);
    return new LlmUpstreamError(detail, { cause: new Error(error.message.slice(0, MAX_LOGGED_MESSAGE)) });
  }
  return new LlmUpstreamError('The language model sent a response that could not be read.');
}

/** A chunk of a streamed Chat Completion, or a whole one, as far as a reply needs it. */
interface CompletionChunk {
  model?: unknown;
  usage?: { prompt_tokens: number; completion_tokens: number } | null;
  /** `message` in a whole completion, which a server that ignores `stream: true` sends. */
  choices?: {
    delta?: { content?: string | null };
    message?: { content?: string | null };
    finish_reason?: string | null;
  }[];
  error?: unknown;
}

const END_OF_STREAM = '[DONE]';

/**
 * The response body's chunks as they come, each awaited for at most `ms`; on expiry the body is
 * destroyed, which aborts the request, and LlmTimeoutError thrown. The client's own timeout ends
 * with the response headers, so without this a server that goes quiet mid-body would hold the turn
 * (and the chat's lock) forever. Time the consumer spends between chunks does not count. A
 * consumer that stops early destroys the body too.
 */
async function* withIdleTimeout(body: Readable, ms: number): AsyncGenerator<Buffer> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let awaiting = false;
  let idle = false;
  // One timer for the whole body, restarted for each chunk awaited rather than made anew.
  const timer = setTimeout(() => {
    if (!awaiting) return;
    idle = true;
    body.destroy();
  }, ms);
  try {
    while (true) {
      awaiting = true;
      timer.refresh();
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        throw idle ? new LlmTimeoutError(TIMEOUT_DETAIL) : error;
      } finally {
        awaiting = false;
      }
      if (idle) throw new LlmTimeoutError(TIMEOUT_DETAIL);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    clearTimeout(timer);
    await chunks.return?.();
  }
}

/**
 * Reads the rest of a body nothing waits for; one that breaks, stays silent or keeps sending for
 * `ms` in all is let go.
 */
async function drain(body: AsyncGenerator<Buffer>, source: Readable, ms: number): Promise<void> {
  const timer = setTimeout(() => source.destroy(), ms);
  try {
    while (!(await body.next()).done);
  } catch {
    // The reply it carried is whole already.
  } finally {
    clearTimeout(timer);
  }
}

/** Stands for `[DONE]` among the chunks. */
const DONE = null;

/**
 * The body's chunks as they come, then DONE if `[DONE]` came. A JSON body (a server that ignores
 * `stream: true`) is one whole completion: it comes as one chunk, then DONE. After DONE what is
 * left of the body (normally just its end) is read in the background, for at most `timeoutMs`, so
 * that the connection can be reused and a body left open does not hold the turn; a consumer that
 * stops before it, or a failure, destroys the body, which cancels the request.
 */
async function* chunksOf(response: Response, timeoutMs: number): AsyncGenerator<CompletionChunk | typeof DONE> {
  // The provider's fetch (undiciFetch) answers with a Node stream as the body.
  const source = response.body as unknown as Readable;
  const body = withIdleTimeout(source, timeoutMs);
  const decoder = new TextDecoder();
  let done = false;
  try {
    if (/^application\/json\b/i.test(response.headers.get('content-type') ?? '')) {
      let text = '';
      for (let next = await body.next(); !next.done; next = await body.next()) {
        text += decoder.decode(next.value, { stream: true });
      }
      yield parseChunk(text + decoder.decode());
      done = true;
      yield DONE;
      return;
    }
    const events: string[] = [];
    const parser = createParser({ onEvent: ({ data }) => events.push(data) });
    for (let next = await body.next(); !next.done; next = await body.next()) {
      parser.feed(decoder.decode(next.value, { stream: true }));
      for (const data of events) {
        done = data.startsWith(END_OF_STREAM);
        yield done ? DONE : parseChunk(data);
        if (done) return;
      }
      events.length = 0;
    }
  } finally {
    if (done) void drain(body, source, timeoutMs);
    else await body.return(undefined);
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
    return `openai at ${withoutPassword(this.client.baseURL)}`;
  }

  /**
   * The client builds and sends the request (base URL, key, headers, retries, timeout, its error
   * types); the streamed body is read here with eventsource-parser, which costs a turn a fraction
   * of the client's own stream decoding.
   */
  async *stream({ model, messages, maxOutputTokens, signal }: LlmRequest): AsyncGenerator<LlmStreamPart> {
    let answeredBy = model;
    let usage: LlmUsage | null = null;
    let sawChoices = false;
    // A body that ends with neither broke off: a proxy or server that closes the connection cleanly
    // mid-reply leaves no other trace, and the text so far must not pass for the whole reply.
    let finishReason: string | undefined;
    let done = false;
    try {
      // What `chat.completions.create` sends, with the history shared with the last turn copied.
      const rest = JSON.stringify({
        model,
        ...(this.officialApi ? { max_completion_tokens: maxOutputTokens } : { max_tokens: maxOutputTokens }),
        stream: true,
        stream_options: { include_usage: true },
      });
      const body = this.bodies.encode('{"messages":[', messages, `],${rest.slice(1)}`);
      const response = await this.client
        .post('/chat/completions', {
          body,
          // The client sends bytes as they are, but labels them only when told.
          headers: { 'content-type': 'application/json' },
          stream: true,
          signal,
        })
        .asResponse();
      for await (const chunk of chunksOf(response, this.timeoutMs)) {
        if (chunk === DONE) {
          done = true;
          break;
        }
        if (typeof chunk.model === 'string' && chunk.model) answeredBy = chunk.model;
        if (chunk.usage) {
          usage = { promptTokens: chunk.usage.prompt_tokens, completionTokens: chunk.usage.completion_tokens };
        }
        if (!Array.isArray(chunk.choices) || chunk.choices.length === 0) continue;
        sawChoices = true;
        const reason = chunk.choices[0]?.finish_reason;
        if (typeof reason === 'string' && reason) finishReason = reason;
        const content = (chunk.choices[0]?.delta ?? chunk.choices[0]?.message)?.content;
        if (content) {
          yield { type: 'delta', content };
          // Chunks that arrived before an abort are not handed out after it.
          signal?.throwIfAborted();
        }
      }
      // An aborted request can end its body without an error.
      signal?.throwIfAborted();
    } catch (error) {
      if (signal?.aborted) throw error instanceof APIUserAbortError ? error : new APIUserAbortError();
      // Once the model has said why it stopped the reply is whole: a connection that then breaks or
      // goes quiet (until the idle timeout) before the usage does not undo it.
      if (!done && finishReason === undefined) throw toLlmError(error);
    }
    if (!sawChoices) throw new LlmUpstreamError('The language model sent a reply without choices.');
    if (!done && finishReason === undefined) {
      throw new LlmUpstreamError('The language model stopped sending its reply before the end.');
    }
    yield { type: 'finish', model: answeredBy, usage, ...(finishReason !== undefined && { reason: finishReason }) };
  }
}

/** One event's data as a chunk; an error the upstream reports mid-stream is thrown as one. */
function parseChunk(data: string): CompletionChunk {
  let chunk: CompletionChunk | null;
  try {
    chunk = JSON.parse(data) as CompletionChunk | null;
  } catch {
    chunk = null;
  }
  if (chunk === null || typeof chunk !== 'object') {
    throw new LlmUpstreamError('The language model sent a response that could not be read.');
  }
  if (chunk.error) {
    throw new LlmUpstreamError('The language model reported an error while streaming its reply.');
  }
  return chunk;
}
