export type LlmRole = 'system' | 'user' | 'assistant';

export interface LlmMessage {
  role: LlmRole;
  content: string;
}

export interface LlmRequest {
  model: string;
  /** The whole context: system prompt first, then the conversation, oldest first. */
  messages: readonly LlmMessage[];
  maxOutputTokens: number;
  /** Aborting it cancels the upstream call. */
  signal?: AbortSignal;
}

export interface LlmUsage {
  promptTokens: number;
  completionTokens: number;
}

export interface LlmReply {
  content: string;
  /** The model that answered, as the provider names it. */
  model: string;
  usage: LlmUsage | null;
}

/**
 * The LLM port and DI token. The LLM module binds one implementation from configuration;
 * tests and users replace it with `overrideProvider(LlmProvider)`.
 *
 * Implementations throw the errors of `llm-errors.ts` for upstream failures.
 */
export abstract class LlmProvider {
  /** Short name for logs and status: `openai`, `offline` … */
  abstract readonly name: string;

  abstract complete(request: LlmRequest): Promise<LlmReply>;
}
