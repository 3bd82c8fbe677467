import { Injectable } from '@nestjs/common';
import { Chat, chatKeyOf } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { AppConfig, InjectAppConfig } from '../config/app-config';
import { LlmMessage } from '../llm/llm-provider';
import { contextTokensFor } from '../llm/model-context-windows';
import { TokenCounter } from '../llm/token-counter';
import { MessageTooLongForContextError } from './message-errors';

/** The first history read; each further one reads twice as many, so a long history takes few reads. */
const FIRST_HISTORY_BATCH = 128;
const MAX_HISTORY_BATCH = 1024;
const SYSTEM_PROMPT_CACHE_SIZE = 512;

/**
 * Builds what the LLM sees for a turn: the system prompt, then the newest messages that fit the
 * token budget. Messages carry their token count from when they were stored, so only the system
 * prompt is ever tokenized here (and that is cached).
 */
@Injectable()
export class ContextBuilder {
  private readonly systemPromptTokens = new Map<string, number>();

  constructor(
    private readonly chats: ChatRepository,
    private readonly tokens: TokenCounter,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {}

  /** Throws when a message of `contentTokens` could not fit even as the only message. */
  assertFits(chat: Chat, contentTokens: number): void {
    const budget = this.budget(chat);
    const needed = this.systemCost(chat) + contentTokens + TokenCounter.MESSAGE_OVERHEAD;
    if (needed > budget) throw new MessageTooLongForContextError(needed, budget);
  }

  /** The context for a reply to the message `throughSeq`: it and the newest before it that fit. */
  async build(chat: Chat, throughSeq: number): Promise<LlmMessage[]> {
    let remaining = this.budget(chat) - this.systemCost(chat);
    const newestFirst: LlmMessage[] = [];
    let beforeSeq = throughSeq + 1;
    for (let limit = FIRST_HISTORY_BATCH; ; limit = Math.min(limit * 2, MAX_HISTORY_BATCH)) {
      const batch = await this.chats.listRecentMessages(chatKeyOf(chat), { limit, beforeSeq });
      for (const message of batch) {
        remaining -= message.tokenCount + TokenCounter.MESSAGE_OVERHEAD;
        if (remaining < 0) return this.assemble(chat, newestFirst);
        newestFirst.push({ role: message.role, content: message.content });
      }
      if (batch.length < limit) return this.assemble(chat, newestFirst);
      beforeSeq = batch[batch.length - 1].seq;
    }
  }

  private assemble(chat: Chat, newestFirst: LlmMessage[]): LlmMessage[] {
    return [{ role: 'system', content: this.systemPrompt(chat) }, ...newestFirst.reverse()];
  }

  private budget(chat: Chat): number {
    return contextTokensFor(this.config, chat.model) - this.config.llmMaxOutputTokens - TokenCounter.REPLY_PRIMING;
  }

  private systemPrompt(chat: Chat): string {
    return chat.systemPrompt ?? this.config.systemPrompt;
  }

  private systemCost(chat: Chat): number {
    const prompt = this.systemPrompt(chat);
    let tokens = this.systemPromptTokens.get(prompt);
    if (tokens === undefined) {
      tokens = this.tokens.count(prompt);
      if (this.systemPromptTokens.size >= SYSTEM_PROMPT_CACHE_SIZE) this.systemPromptTokens.clear();
      this.systemPromptTokens.set(prompt, tokens);
    }
    return tokens + TokenCounter.MESSAGE_OVERHEAD;
  }
}
