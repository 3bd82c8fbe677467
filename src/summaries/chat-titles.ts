import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { ChatKey } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { CHAT_LIMITS } from '../chats/dto/chat-limits';
import { messageOf } from '../common/errors/error-message';
import { storableText } from '../common/validation/storable-text';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { LlmCallMeter } from '../llm/llm-call-meter';
import { isCutShort, LlmProvider } from '../llm/llm-provider';
import { TextAnalyzer } from './text-analyzer';

const TITLE_LENGTH = 60;
const LLM_TITLE_TOKENS = 30;
const LLM_TITLE_PROMPT =
  'Write a title of at most six words for a conversation that starts with the message below. ' +
  'Answer with the title only: no quotes, no final punctuation.';
/** Words a cut title must not end on. */
const DANGLING = new Set([
  'a',
  'an',
  'the',
  'and',
  'or',
  'but',
  'of',
  'to',
  'in',
  'on',
  'at',
  'for',
  'with',
  'by',
  'from',
  'as',
  'my',
  'our',
  'your',
  'is',
  'are',
  'was',
  'that',
  'this',
  'it',
  'i',
  'we',
]);

/** `text` cut to at most `limit` characters at a word boundary, never ending on a dangling word. */
function shorten(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const words = text.slice(0, limit + 1).split(' ');
  words.pop();
  while (words.length > 1 && DANGLING.has(words[words.length - 1].toLowerCase().replace(/\W+$/, ''))) words.pop();
  return `${words.join(' ').replace(/[,;:–-]+$/, '')}…`;
}

/**
 * Gives a chat created without a title one after its first exchange (AUTO_TITLE). A title from the
 * first message is set before the turn answers; one the LLM writes is set after, so that the first
 * reply never waits for a second LLM call.
 */
@Injectable()
export class ChatTitler implements OnModuleDestroy {
  private readonly logger = new Logger(ChatTitler.name);
  /** Titles the LLM is writing, after their turns answered. */
  private readonly byLlm = new Set<Promise<void>>();
  /** Aborted at shutdown: titles still being written by the LLM are then taken from the first message. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly chats: ChatRepository,
    private readonly analyzer: TextAnalyzer,
    private readonly llm: LlmProvider,
    private readonly llmCalls: LlmCallMeter,
    @llmConfig.inject() private readonly llmSettings: LlmConfig,
  ) {}

  /**
   * Never fails the turn: a title is a nicety. A title the user set meanwhile is kept. `draft` is
   * {@link draftFromMessage}'s, when the turn started one. With `askLlm` and AUTO_TITLE=llm, it
   * resolves at once and the LLM's title is set later; without `askLlm`, AUTO_TITLE=llm titles from
   * the first message too.
   */
  async titleNewChat(
    chat: ChatKey,
    firstMessage: string,
    { draft, askLlm = true }: { draft?: Promise<string | null>; askLlm?: boolean } = {},
  ): Promise<void> {
    if (this.llmSettings.autoTitle === 'off') return;
    if (askLlm && this.llmSettings.autoTitle === 'llm' && !this.llm.isOffline) {
      const titling = this.setTitle(
        chat,
        async () => (await this.titleByLlm(chat, firstMessage)) ?? this.titleFromMessage(firstMessage),
      );
      this.byLlm.add(titling);
      void titling.finally(() => this.byLlm.delete(titling));
      return;
    }
    await this.setTitle(chat, () => draft ?? this.titleFromMessage(firstMessage));
  }

  /** Resolves once no title is being written by the LLM. */
  async idle(): Promise<void> {
    while (this.byLlm.size > 0) await Promise.all(this.byLlm);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping.abort();
    await this.idle();
  }

  private async setTitle(chat: ChatKey, title: () => Promise<string | null> | string | null): Promise<void> {
    try {
      const chosen = await title();
      if (chosen) await this.chats.setTitleIfUntitled(chat, chosen);
    } catch (error) {
      this.logger.warn(`Could not title chat ${chat.chatId}: ${messageOf(error)}`);
    }
  }

  /**
   * With AUTO_TITLE=first-message, the title from the first message, worked out while the turn
   * waits for its reply, so that the answer to a new chat's first message does not also wait for
   * the text analysis (in a burst of new chats, about a tenth of the burst's time). It starts two
   * passes of the event loop later, so that it does not hold up the turn's own upstream request,
   * which undici writes one pass after it is made on a reused connection. Never rejects.
   */
  draftFromMessage(chat: ChatKey, firstMessage: string): Promise<string | null> | undefined {
    if (this.llmSettings.autoTitle !== 'first-message') return undefined;
    return new Promise((resolve) =>
      setImmediate(() =>
        setImmediate(() => {
          try {
            resolve(this.titleFromMessage(firstMessage));
          } catch (error) {
            this.logger.warn(`Could not title chat ${chat.chatId}: ${messageOf(error)}`);
            resolve(null);
          }
        }),
      ),
    );
  }

  /**
   * The first sentence of the message that names something (a greeting or an outburst alone does
   * not), cleaned up and cut at a word boundary.
   */
  titleFromMessage(message: string): string | null {
    // A sentence ends at punctuation followed by white space, so "Node.js" stays whole.
    const sentences = message
      .split(/(?<=[.!?…])\s+/)
      .map((text) =>
        text
          .replace(/\s+/g, ' ')
          .replace(/[\s.!?…:;,]+$/, '')
          .trim(),
      )
      .filter((text) => text.length > 0)
      .map((text) => ({ text, analysis: this.analyzer.analyze(text).sentences }));
    const chosen =
      sentences.find((s) => s.analysis.some((a) => a.topics.length > 0)) ??
      sentences.find((s) => s.analysis.some((a) => a.terms.length > 0));
    if (!chosen) return null;
    return shorten(chosen.text.charAt(0).toUpperCase() + chosen.text.slice(1), TITLE_LENGTH);
  }

  /** The LLM's title; null (use the first message) when it cannot, or when the service stops. */
  private async titleByLlm(chat: ChatKey, firstMessage: string): Promise<string | null> {
    const { signal } = this.stopping;
    const reply = await this.llmCalls
      .complete('title', chat.chatId, {
        model: this.llmSettings.defaultModel,
        messages: [
          { role: 'system', content: LLM_TITLE_PROMPT },
          { role: 'user', content: shorten(firstMessage, 2000) },
        ],
        maxOutputTokens: LLM_TITLE_TOKENS,
        signal,
      })
      .catch((error: unknown) => {
        if (!signal.aborted) this.logger.warn(`The LLM could not title a chat: ${messageOf(error)}`);
        return null;
      });
    if (!reply) return null;
    if (isCutShort(reply.reason)) {
      // Half a title reads worse than the first message's; a reasoning model can spend the whole
      // budget thinking.
      this.logger.warn(`The LLM's title was cut short (${reply.reason}); the chat is titled from its first message.`);
      return null;
    }
    const title = storableText(reply.content)
      .replace(/\s+/g, ' ')
      .replace(/^["'“”\s]+|["'“”\s.!?]+$/g, '')
      .trim();
    return title ? shorten(title, CHAT_LIMITS.titleLength) : null;
  }
}
