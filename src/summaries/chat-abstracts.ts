import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { Chat } from '../chats/chat';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { contextTokensFor } from '../config/model-context-windows';
import { LlmCallMeter } from '../llm/llm-call-meter';
import { LlmUpstreamError } from '../llm/llm-errors';
import { LlmProvider } from '../llm/llm-provider';
import { TokenCounter } from '../llm/token-counter';
import { Message } from '../chats/message';

const ABSTRACT_TOKENS = 300;
const ABSTRACT_PROMPT =
  'Summarize the conversation below in two or three sentences for someone who has not read it: ' +
  'what was asked, what was answered, and how it ended.';
export const OFFLINE_ABSTRACT =
  'No language model is configured, so no abstract was written. Set OPENAI_API_KEY (or OPENAI_BASE_URL) to get one.';

/** Identifies what the chat looked like: any new message or edit changes it. */
export const chatState = (chat: Chat) => `${chat.messageCount}:${chat.updatedAt.getTime()}`;

/**
 * Short summaries written by the LLM, cached until the chat changes. Concurrent requests for the
 * same chat state share one LLM call.
 */
@Injectable()
export class ChatAbstracts {
  /** By chat: the abstract of the chat state it was asked for. */
  private readonly cache = new LRUCache<string, { state: string; abstract: Promise<string> }>({ max: 1000 });

  constructor(
    private readonly llm: LlmProvider,
    private readonly llmCalls: LlmCallMeter,
    @llmConfig.inject() private readonly llmSettings: LlmConfig,
  ) {}

  /** `loadMessages` is only called when the abstract is not cached. */
  abstractOf(chat: Chat, loadMessages: () => Promise<readonly Message[]>): Promise<string> {
    const state = chatState(chat);
    const cached = this.cache.get(chat.id);
    if (cached?.state === state) return cached.abstract;
    const entry = { state, abstract: loadMessages().then((messages) => this.write(chat, messages)) };
    this.cache.set(chat.id, entry);
    // A failure is not cached: the next request tries again.
    entry.abstract.catch(() => {
      if (this.cache.peek(chat.id) === entry) this.cache.delete(chat.id);
    });
    return entry.abstract;
  }

  /** The chat was deleted: its abstract goes. */
  forget(chatId: string): void {
    this.cache.delete(chatId);
  }

  private async write(chat: Chat, messages: readonly Message[]): Promise<string> {
    if (this.llm.isOffline) return OFFLINE_ABSTRACT;
    if (messages.length === 0) return 'The chat has no messages yet.';
    const reply = await this.llmCalls.complete('summary', chat.id, {
      model: chat.model,
      messages: [
        { role: 'system', content: ABSTRACT_PROMPT },
        { role: 'user', content: this.transcript(chat, messages) },
      ],
      maxOutputTokens: ABSTRACT_TOKENS,
    });
    const abstract = reply.content.trim();
    if (!abstract) {
      // Thrown, so not cached: the next request asks again.
      const why =
        reply.reason === 'length'
          ? `it reached its limit of ${ABSTRACT_TOKENS} tokens first, as a reasoning model can while it thinks`
          : reply.reason === 'content_filter'
            ? 'its content filter stopped it'
            : 'its answer was empty';
      throw new LlmUpstreamError(`The language model wrote no abstract: ${why}.`);
    }
    return abstract;
  }

  /** The newest messages that fit the model's window, oldest first, one line each. */
  private transcript(chat: Chat, messages: readonly Message[]): string {
    let budget = contextTokensFor(this.llmSettings, chat.model) - ABSTRACT_TOKENS - 200;
    const lines: string[] = [];
    for (let i = messages.length - 1; i >= 0; i--) {
      budget -= messages[i].tokenCount + TokenCounter.MESSAGE_OVERHEAD;
      if (budget < 0 && lines.length > 0) break;
      lines.push(`${messages[i].role === 'user' ? 'User' : 'Assistant'}: ${messages[i].content}`);
    }
    return lines.reverse().join('\n\n');
  }
}
