import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { Chat, chatKeyOf } from '../chats/chat';
import { ChatRepository, ContextMessage } from '../chats/chat.repository';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { LlmMessage } from '../llm/llm-provider';
import { contextTokensFor } from '../llm/model-context-windows';
import { TokenCounter } from '../llm/token-counter';
import { MessageTooLongForContextError } from './message-errors';

/** The first history read; each further one reads twice as many, so a long history takes few reads. */
const FIRST_HISTORY_BATCH = 128;
const MAX_HISTORY_BATCH = 1024;
const SYSTEM_PROMPT_CACHE_SIZE = 512;
/** Tokens of messages kept in recent windows, over all chats: about 80 MB of text. */
const WINDOW_CACHE_TOKENS = 20_000_000;

/**
 * A chat's newest messages through `lastSeq`, oldest first: enough to fill the largest context
 * its model allows (`tokens` is their cost), or all of them (`fromStart`). Each message is the one
 * frozen `LlmMessage` every context that holds it shares, so turns neither copy the history nor
 * make a provider encode it again; its cost in the context is at the same index of `costs`. Kept
 * apart, a turn picks its context without touching every message object of a long history.
 */
interface RecentWindow {
  messages: LlmMessage[];
  costs: number[];
  tokens: number;
  lastSeq: number;
  fromStart: boolean;
}

const llmMessage = ({ role, content }: ContextMessage): LlmMessage => Object.freeze({ role, content });
const costOf = ({ tokenCount }: ContextMessage): number => tokenCount + TokenCounter.MESSAGE_OVERHEAD;

/**
 * Builds what the LLM sees for a turn: the system prompt, then the newest messages that fit the
 * token budget. Messages carry their token count from when they were stored, so only the system
 * prompt is ever tokenized here (and that is cached). Each chat's recent window is kept between
 * turns, so a turn reads only the messages stored since the last one (its own, usually), not a
 * context's worth of history; messages are never changed once stored, and a gap in seq (another
 * instance wrote, or the window was evicted) means a full read.
 */
@Injectable()
export class ContextBuilder {
  /** Each system prompt's message and cost in the context, by its text. */
  private readonly systemPrompts = new Map<string, { message: LlmMessage; cost: number }>();
  private readonly windows = new LRUCache<string, RecentWindow>({
    max: 10_000,
    maxSize: WINDOW_CACHE_TOKENS,
    sizeCalculation: (window) => Math.max(1, window.tokens),
  });

  constructor(
    private readonly chats: ChatRepository,
    private readonly tokens: TokenCounter,
    @llmConfig.inject() private readonly llm: LlmConfig,
  ) {}

  /** Throws when a message of `contentTokens` could not fit even as the only message. */
  assertFits(chat: Chat, contentTokens: number): void {
    const budget = this.budget(chat);
    const needed = this.systemPrompt(chat).cost + contentTokens + TokenCounter.MESSAGE_OVERHEAD;
    if (needed > budget) throw new MessageTooLongForContextError(needed, budget);
  }

  /**
   * The context for a reply to `answered`, a stored message of the chat: it and the newest before
   * it that fit. Called under the chat's turn lock, which keeps the chat's window to one turn at a
   * time.
   */
  async build(chat: Chat, answered: ContextMessage): Promise<LlmMessage[]> {
    const { messages, costs } =
      (await this.extendWindow(chat, answered)) ?? (await this.readWindow(chat, answered.seq));
    let remaining = this.budget(chat) - this.systemPrompt(chat).cost;
    let from = costs.length;
    while (from > 0 && remaining >= costs[from - 1]) {
      from--;
      remaining -= costs[from];
    }
    const context: LlmMessage[] = [this.systemPrompt(chat).message];
    for (let i = from; i < messages.length; i++) context.push(messages[i]);
    return context;
  }

  /**
   * A message this instance just stored (a turn's reply): the chat's kept window takes it in, so
   * the next turn need not read it back. A window that is behind stays as it is and catches up then.
   */
  remember(chat: Chat, stored: ContextMessage): void {
    const window = this.windows.get(chat.id);
    if (window?.lastSeq === stored.seq - 1) this.extend(chat, window, [stored]);
  }

  /**
   * The kept window brought up to `answered`; undefined when there is none that can be. The
   * message a turn answers is the one it just stored, and its earlier reply was remembered, so
   * usually nothing is read.
   */
  private async extendWindow(chat: Chat, answered: ContextMessage): Promise<RecentWindow | undefined> {
    const throughSeq = answered.seq;
    const window = this.windows.get(chat.id);
    // None kept, one that no longer covers the budget, or a repeat answering an older message: a full read.
    if (!window || (!window.fromStart && window.tokens < this.budget(chat)) || window.lastSeq > throughSeq) {
      return undefined;
    }
    if (window.lastSeq === throughSeq) return window;
    const missing = throughSeq - window.lastSeq - 1;
    // Far behind (other instances wrote much meanwhile): the full read stops at the budget instead.
    if (missing >= FIRST_HISTORY_BATCH) return undefined;
    const between =
      missing === 0 ? [] : await this.chats.listMessages(chatKeyOf(chat), { limit: missing, afterSeq: window.lastSeq });
    if (between.length !== missing) return undefined;
    this.extend(chat, window, [...between, answered]);
    return window;
  }

  /** Appends the messages that follow the window's last one, and drops what the budget no longer needs. */
  private extend(chat: Chat, window: RecentWindow, newer: readonly ContextMessage[]): void {
    for (const stored of newer) {
      const cost = costOf(stored);
      window.messages.push(llmMessage(stored));
      window.costs.push(cost);
      window.tokens += cost;
    }
    window.lastSeq = newer[newer.length - 1].seq;
    this.trim(chat, window);
    // Deleted first: setting the same object again would keep the size it had.
    this.windows.delete(chat.id);
    this.windows.set(chat.id, window);
  }

  /** Reads the newest messages through `throughSeq` until they fill the largest budget, and keeps them. */
  private async readWindow(chat: Chat, throughSeq: number): Promise<RecentWindow> {
    const budget = this.budget(chat);
    const newestFirst: ContextMessage[] = [];
    let tokens = 0;
    let beforeSeq = throughSeq + 1;
    let fromStart = false;
    for (let limit = FIRST_HISTORY_BATCH; tokens < budget; limit = Math.min(limit * 2, MAX_HISTORY_BATCH)) {
      const batch = await this.chats.listRecentMessages(chatKeyOf(chat), { limit, beforeSeq });
      for (const stored of batch) {
        newestFirst.push(stored);
        tokens += costOf(stored);
        if (tokens >= budget) break;
      }
      if (batch.length < limit) {
        fromStart = tokens < budget;
        break;
      }
      beforeSeq = batch[batch.length - 1].seq;
    }
    const oldestFirst = newestFirst.reverse();
    const window: RecentWindow = {
      messages: oldestFirst.map(llmMessage),
      costs: oldestFirst.map(costOf),
      tokens,
      lastSeq: throughSeq,
      fromStart,
    };
    this.windows.set(chat.id, window);
    return window;
  }

  /** Drops the oldest messages the largest budget no longer needs. */
  private trim(chat: Chat, window: RecentWindow): void {
    const budget = this.budget(chat);
    let drop = 0;
    while (drop < window.costs.length && window.tokens - window.costs[drop] >= budget) {
      window.tokens -= window.costs[drop];
      drop++;
    }
    if (drop > 0) {
      window.messages.splice(0, drop);
      window.costs.splice(0, drop);
      window.fromStart = false;
    }
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
