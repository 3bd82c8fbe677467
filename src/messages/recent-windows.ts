import { LRUCache } from 'lru-cache';
import { ChatKey } from '../chats/chat';
import { ChatRepository, ContextMessage } from '../chats/chat.repository';
import { LlmMessage } from '../llm/llm-provider';
import { TokenCounter } from '../llm/token-counter';

/** The first history read; each further one reads twice as many, so a long history takes few reads. */
const FIRST_HISTORY_BATCH = 128;
const MAX_HISTORY_BATCH = 1024;
/** Tokens of messages kept in recent windows, over all chats: about 80 MB of text. */
const WINDOW_CACHE_TOKENS = 20_000_000;

/**
 * A chat's newest messages through `lastSeq`, oldest first, enough to fill `budget` tokens (the
 * largest context its model allows) or all of them (`fromStart`); `costs[i]` is the cost of
 * `messages[i]` in a context, kept apart so a turn picks its context without touching every
 * message object of a long history.
 *
 * The contract with whoever reads a window's messages: each is frozen, and is the same object in
 * every window (every turn) that holds it. A provider may therefore keep what it derived from a
 * message (the OpenAI provider keeps its bytes in the request body, RequestBodyEncoder) and reuse
 * it while it sees the same object.
 */
export interface RecentWindow {
  readonly messages: readonly LlmMessage[];
  readonly costs: readonly number[];
}

interface KeptWindow extends RecentWindow {
  messages: LlmMessage[];
  costs: number[];
  tokens: number;
  budget: number;
  lastSeq: number;
  fromStart: boolean;
}

const llmMessage = ({ role, content }: ContextMessage): LlmMessage => Object.freeze({ role, content });
const costOf = ({ tokenCount }: ContextMessage): number => tokenCount + TokenCounter.MESSAGE_OVERHEAD;

/**
 * Each chat's recent window, kept between turns, so a turn reads only the messages stored since
 * the last one it knows of, not a context's worth of history: a full window's turn costs 0.4 ms
 * more in memory without it, and 3 ms more on SQLite and PostgreSQL (docs/performance.md).
 * Messages never change once stored, and a gap in `seq` (another instance wrote, or the window
 * was evicted) means a full read. Used under the chat's turn lock, one turn at a time per chat.
 */
export class RecentWindows {
  private readonly windows = new LRUCache<string, KeptWindow>({
    max: 10_000,
    maxSize: WINDOW_CACHE_TOKENS,
    sizeCalculation: (window) => Math.max(1, window.tokens),
  });

  constructor(private readonly chats: ChatRepository) {}

  /** The window through `answered`, a stored message of the chat, filling `budget` tokens. */
  async through(chat: ChatKey, answered: ContextMessage, budget: number): Promise<RecentWindow> {
    return (await this.extended(chat, answered, budget)) ?? (await this.read(chat, answered.seq, budget));
  }

  /**
   * A message this instance just stored (a turn's reply): the chat's window takes it in, so the
   * next turn need not read it back. A window that is behind stays as it is and catches up then.
   */
  remember(chat: ChatKey, stored: ContextMessage): void {
    const window = this.windows.get(chat.chatId);
    if (window?.lastSeq === stored.seq - 1) this.extend(chat, window, [stored]);
  }

  /**
   * The kept window brought up to `answered`; undefined when there is none that can be. The
   * message a turn answers is the one it just stored, and its earlier reply was remembered, so
   * usually nothing is read.
   */
  private async extended(chat: ChatKey, answered: ContextMessage, budget: number): Promise<KeptWindow | undefined> {
    const throughSeq = answered.seq;
    const window = this.windows.get(chat.chatId);
    // None kept, one for another budget or that no longer covers it, or a repeat answering an older message.
    if (
      !window ||
      window.budget !== budget ||
      (!window.fromStart && window.tokens < budget) ||
      window.lastSeq > throughSeq
    ) {
      return undefined;
    }
    if (window.lastSeq === throughSeq) return window;
    const missing = throughSeq - window.lastSeq - 1;
    // Far behind (other instances wrote much meanwhile): the full read stops at the budget instead.
    if (missing >= FIRST_HISTORY_BATCH) return undefined;
    const between =
      missing === 0 ? [] : await this.chats.listMessages(chat, { limit: missing, afterSeq: window.lastSeq });
    if (between.length !== missing) return undefined;
    this.extend(chat, window, [...between, answered]);
    return window;
  }

  /** Appends the messages that follow the window's last one, and drops what the budget no longer needs. */
  private extend(chat: ChatKey, window: KeptWindow, newer: readonly ContextMessage[]): void {
    for (const stored of newer) {
      const cost = costOf(stored);
      window.messages.push(llmMessage(stored));
      window.costs.push(cost);
      window.tokens += cost;
    }
    window.lastSeq = newer[newer.length - 1].seq;
    this.trim(window);
    // Deleted first: setting the same object again would keep the size it had.
    this.windows.delete(chat.chatId);
    this.windows.set(chat.chatId, window);
  }

  /** Reads the newest messages through `throughSeq` until they fill the budget, and keeps them. */
  private async read(chat: ChatKey, throughSeq: number, budget: number): Promise<KeptWindow> {
    const newestFirst: ContextMessage[] = [];
    let tokens = 0;
    let beforeSeq = throughSeq + 1;
    let fromStart = false;
    for (let limit = FIRST_HISTORY_BATCH; tokens < budget; limit = Math.min(limit * 2, MAX_HISTORY_BATCH)) {
      const batch = await this.chats.listRecentMessages(chat, { limit, beforeSeq });
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
    const window: KeptWindow = {
      messages: oldestFirst.map(llmMessage),
      costs: oldestFirst.map(costOf),
      tokens,
      budget,
      lastSeq: throughSeq,
      fromStart,
    };
    this.windows.set(chat.chatId, window);
    return window;
  }

  /** Drops the oldest messages the budget no longer needs. */
  private trim(window: KeptWindow): void {
    let drop = 0;
    while (drop < window.costs.length && window.tokens - window.costs[drop] >= window.budget) {
      window.tokens -= window.costs[drop];
      drop++;
    }
    if (drop > 0) {
      window.messages.splice(0, drop);
      window.costs.splice(0, drop);
      window.fromStart = false;
    }
  }
}
