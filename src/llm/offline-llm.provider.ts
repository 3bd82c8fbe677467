import { Injectable } from '@nestjs/common';
import { LlmProvider, LlmReply, LlmRequest } from './llm-provider';
import { TokenCounter } from './token-counter';

const QUOTE_LIMIT = 200;

/**
 * The provider bound when no model is configured: no network, deterministic, instant. It says
 * plainly that it is not a model, so nobody mistakes a demo for an AI answer.
 */
@Injectable()
export class OfflineLlmProvider extends LlmProvider {
  static readonly MODEL = 'offline';
  readonly name = 'offline';

  constructor(private readonly tokens: TokenCounter) {
    super();
  }

  async complete({ messages, signal }: LlmRequest): Promise<LlmReply> {
    signal?.throwIfAborted();
    const lastUser = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
    const quote = lastUser.length > QUOTE_LIMIT ? `${lastUser.slice(0, QUOTE_LIMIT)}…` : lastUser;
    const content =
      `No language model is configured, so this reply is not AI-generated. You said: "${quote}". ` +
      'To get real replies, set OPENAI_API_KEY (and OPENAI_BASE_URL for any OpenAI-compatible server) and restart the service.';
    const promptTokens = messages.reduce(
      (sum, m) => sum + this.tokens.count(m.content) + TokenCounter.MESSAGE_OVERHEAD,
      TokenCounter.REPLY_PRIMING,
    );
    return {
      content,
      model: OfflineLlmProvider.MODEL,
      usage: { promptTokens, completionTokens: this.tokens.count(content) },
    };
  }
}
