import { Injectable } from '@nestjs/common';
import { Chat, chatKeyOf } from '../chats/chat';
import { ChatRepository, ContextMessage } from '../chats/chat.repository';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { contextTokensFor } from '../config/model-context-windows';
import { LlmMessage } from '../llm/llm-provider';
import { TokenCounter } from '../llm/token-counter';
import { MessageTooLongForContextError, ModelWindowTooSmallError } from './message-errors';
import { RecentWindows } from './recent-windows';

const SYSTEM_PROMPT_CACHE_SIZE = 512;

/**
 * Builds what the LLM sees for a turn: the system prompt, then the newest messages that fit the
 * token budget. Messages carry their token count from when they were stored, so only the system
 * prompt is ever tokenized here (and that is cached). The history comes from the chat's recent
 * window (RecentWindows), which holds the same frozen message objects from turn to turn.
 */
@Injectable()
export class ContextBuilder {
  /** Each system prompt's message and cost in the context, by its text. */
  private readonly systemPrompts = new Map<string, { message: LlmMessage; cost: number }>();
  private readonly windows: RecentWindows;

  constructor(
    chats: ChatRepository,
    private readonly tokens: TokenCounter,
    @llmConfig.inject() private readonly llm: LlmConfig,
  ) {
    this.windows = new RecentWindows(chats);
  }

  /** Lets go of what is kept of a deleted chat. */
  forget(chatId: string): void {
    this.windows.forget(chatId);
  }

  /** Throws when a message of `contentTokens` could not fit even as the only message. */
  assertFits(chat: Chat, contentTokens: number): void {
    const budget = this.budget(chat);
    if (budget <= 0) {
      const window = contextTokensFor(this.llm, chat.model);
      throw new ModelWindowTooSmallError(chat.model, window, this.llm.maxOutputTokens);
    }
    const needed = this.systemPrompt(chat).cost + contentTokens + TokenCounter.MESSAGE_OVERHEAD;
    if (needed > budget) throw new MessageTooLongForContextError(needed, budget);
  }

  /**
   * The context for a reply to `answered`, a stored message of the chat: it and the newest before
   * it that fit. Called under the chat's turn lock, which keeps the chat's window to one turn at a
   * time.
   */
  async build(chat: Chat, answered: ContextMessage): Promise<LlmMessage[]> {
    const { messages, costs } = await this.windows.through(chatKeyOf(chat), answered, this.budget(chat));
    // `answered` (the window's last message) is always sent: it fitted when its turn was admitted,
    // and a system prompt that grew while the turn waited must not leave it out of its own reply.
    let from = costs.length - 1;
    let remaining = this.budget(chat) - this.systemPrompt(chat).cost - costs[from];
    while (from > 0 && remaining >= costs[from - 1]) {
      from--;
      remaining -= costs[from];
    }
    // Sized at once: grown by pushes, a long window's array was copied several times a turn.
    const context = new Array<LlmMessage>(1 + messages.length - from);
    context[0] = this.systemPrompt(chat).message;
    for (let i = from; i < messages.length; i++) context[1 + i - from] = messages[i];
    return context;
  }

  /** A message this instance just stored (a turn's reply), so that the next turn need not read it back. */
  remember(chat: Chat, stored: ContextMessage): void {
    this.windows.remember(chatKeyOf(chat), stored);
  }

  private budget(chat: Chat): number {
    return contextTokensFor(this.llm, chat.model) - this.llm.maxOutputTokens - TokenCounter.REPLY_PRIMING;
  }

  private systemPrompt(chat: Chat): { message: LlmMessage; cost: number } {
    const content = chat.systemPrompt ?? this.llm.systemPrompt;
    let prompt = this.systemPrompts.get(content);
    if (!prompt) {
      prompt = {
        message: Object.freeze({ role: 'system', content }),
        cost: this.tokens.count(content) + TokenCounter.MESSAGE_OVERHEAD,
      };
      if (this.systemPrompts.size >= SYSTEM_PROMPT_CACHE_SIZE) this.systemPrompts.clear();
      this.systemPrompts.set(content, prompt);
    }
    return prompt;
  }
}
