export type LlmRole = 'system' | 'user' | 'assistant';

export interface LlmMessage {
  role: LlmRole;
  content: string;
}

export interface LlmRequest {
  model: string;
  /**
   * The whole context: system prompt first, then the conversation, oldest first. A message that is
   * frozen is never changed, and a later request that holds the same message holds the same
   * object: a provider may keep what it derived from it (see RequestBodyEncoder). Others it reads
   * afresh.
   */
  messages: readonly LlmMessage[];
  maxOutputTokens: number;
  /** Aborting it cancels the upstream call; the stream then rejects. */
  signal?: AbortSignal;
}

export interface LlmUsage {
  promptTokens: number;
  completionTokens: number;
}

/** The token counts an upstream reported, if both are whole numbers of at least 0 (it may send anything). */
export function countedUsage(usage: LlmUsage | null | undefined): LlmUsage | null {
  const counts = (tokens: unknown) => Number.isSafeInteger(tokens) && (tokens as number) >= 0;
  return usage && counts(usage.promptTokens) && counts(usage.completionTokens)
    ? { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens }
    : null;
}

export interface LlmReply {
  content: string;
  /** The model that answered, as the provider names it. */
  model: string;
  usage: LlmUsage | null;
  /** Why the model stopped, when the upstream said (see {@link LlmStreamPart}). */
  reason?: string;
}

/**
 * A piece of a streamed reply: text deltas in order, then one `finish`. Its `reason` is why the
 * model stopped, as OpenAI names it, when the upstream said: `length` (LLM_MAX_OUTPUT_TOKENS) and
 * `content_filter` mean the reply was cut short.
 */
export type LlmStreamPart =
  { type: 'delta'; content: string } | { type: 'finish'; model: string; usage: LlmUsage | null; reason?: string };

/** A finish reason that means the reply was cut short: it is stored `incomplete`. */
export const isCutShort = (reason: string | undefined): boolean => reason === 'length' || reason === 'content_filter';

/**
 * The LLM port and DI token. The LLM module binds one implementation from configuration;
 * tests and users replace it with `overrideProvider(LlmProvider)`.
 *
 * Implementations stream; `complete()` collects the stream. Upstream failures are thrown as the
 * errors of `llm-errors.ts`, before the first part or mid-stream.
 */
export abstract class LlmProvider {
  /** Short name for logs and status: `openai`, `offline` … */
  abstract readonly name: string;

  /** True for a stand-in that is no model, whose words must not pass for a model's (titles, abstracts). */
  get isOffline(): boolean {
    return false;
  }

  /** One phrase for the start-up log: which provider, and where it sends requests. */
  describe(): string {
    return this.name;
  }

  abstract stream(request: LlmRequest): AsyncIterable<LlmStreamPart>;

  /** The reply in one piece. A stream that ends without `finish` is credited to the requested model. */
  async complete(request: LlmRequest): Promise<LlmReply> {
    let content = '';
    let finish: Extract<LlmStreamPart, { type: 'finish' }> | undefined;
    for await (const part of this.stream(request)) {
      if (part.type === 'delta') content += part.content;
      else finish = part;
    }
    return {
      content,
      model: finish?.model ?? request.model,
      usage: finish?.usage ?? null,
      ...(finish?.reason !== undefined && { reason: finish.reason }),
    };
  }
}
