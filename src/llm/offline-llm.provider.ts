import { Injectable } from '@nestjs/common';
import { setImmediate as nextTick } from 'node:timers/promises';
import { LlmProvider, LlmRequest, LlmStreamPart } from './llm-provider';
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
  override get isOffline(): boolean {
    return true;
  }

  constructor(private readonly tokens: TokenCounter) {
    super();
  }

  override describe(): string {
    return 'offline (no model configured: replies say so)';
  }

  /** Streams the reply word by word, yielding to the event loop between words like a real stream. */
  async *stream({ messages, signal }: LlmRequest): AsyncGenerator<LlmStreamPart> {
    const content = this.replyTo(messages[messages.length - 1]?.content ?? '');
    for (const word of content.match(/\S+\s*/g) ?? []) {
      signal?.throwIfAborted();
      yield { type: 'delta', content: word };
      await nextTick();
    }
    signal?.throwIfAborted();
    const promptTokens = messages.reduce(
      (sum, m) => sum + this.tokens.count(m.content) + TokenCounter.MESSAGE_OVERHEAD,
      TokenCounter.REPLY_PRIMING,
    );
    yield {
      type: 'finish',
      model: OfflineLlmProvider.MODEL,
      usage: { promptTokens, completionTokens: this.tokens.count(content) },
    };
  }

  private replyTo(userMessage: string): string {
    const quote = userMessage.length > QUOTE_LIMIT ? `${userMessage.slice(0, QUOTE_LIMIT)}…` : userMessage;
    return (
      `No language model is configured, so this reply is not AI-generated. You said: "${quote}". ` +
      'To get real replies, set OPENAI_API_KEY (and OPENAI_BASE_URL for any OpenAI-compatible server) and restart the service.'
    );
  }
}
