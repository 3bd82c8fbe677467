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
 * Messages the budget no longer needs leave a window this many at a time or more (or once they
 * hold a budget's worth of tokens): dropping them moves every message the window keeps (8 µs for
 * 400 in W1), twice a turn when done at once.
 */
const TRIM_BATCH = 64;

/**
 * The newest messages of a chat's branch through its message `lastId`, oldest first, enough to
 * fill `budget` tokens (the largest context its model allows) or all of them (`fromStart`), and
 * perhaps a few older ones the budget no longer needs (a context is taken from the newest back);
 * `costs[i]` is the cost of `messages[i]` in a context, kept apart so a turn picks its context
 * without touching every message object of a long history.
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
  lastId: string;
  lastSeq: number;
  fromStart: boolean;
}

const llmMessage = ({ role, content }: ContextMessage): LlmMessage => Object.freeze({ role, content });
const costOf = ({ tokenCount }: ContextMessage): number => tokenCount + TokenCounter.MESSAGE_OVERHEAD;

/**
 * Each chat's recent window, kept between turns, so a turn reads only the messages stored since
 * the last one it knows of, not a context's worth of history: a full window's turn costs 0.4 ms
 * more in memory without it, and 3 ms more on SQLite and PostgreSQL (docs/performance.md).
 *
 * A window holds one branch. It grows only by a message whose parent is its last message, so it
 * can never serve another branch: a turn on another branch (an edit, a regeneration, a switch)
 * reads that branch afresh, and so does one after a gap (another instance wrote much, or the
 * window was evicted). Messages never change once stored. Used under the chat's turn lock, one
 * turn at a time per chat.
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
    return (await this.extended(chat, answered, budget)) ?? (await this.read(chat, answered, budget));
  }

  /**
   * A message this instance just stored (a turn's reply): the chat's window takes it in, so the
   * next turn need not read it back. A window of another branch, or one that is behind, stays as it
   * is and is replaced or catches up then.
   */
  remember(chat: ChatKey, stored: ContextMessage): void {
    const window = this.windows.get(chat.chatId);
    if (window?.lastId === stored.parentId) this.extend(chat, window, [stored]);
  }

  /** Lets a deleted chat's window go. */
  forget(chatId: string): void {
    this.windows.delete(chatId);
  }

  /**
   * The kept window brought up to `answered`; undefined when there is none that can be. The
   * message a turn answers is the one it just stored, after the reply it remembered, so usually
   * nothing is read.
   */
  private async extended(chat: ChatKey, answered: ContextMessage, budget: number): Promise<KeptWindow | undefined> {
    const window = this.windows.get(chat.chatId);
    // None kept, or one for another budget or that no longer covers it.
    if (!window || window.budget !== budget || (!window.fromStart && window.tokens < budget)) return undefined;
    if (window.lastId === answered.id) return window;
    if (window.lastId === answered.parentId) {
      this.extend(chat, window, [answered]);
      return window;
    }
    // Other instances wrote meanwhile: the branch's messages since the window's last one, if it
    // is on this branch and not far behind (then the full read stops at the budget instead).
    const since = answered.seq - window.lastSeq;
    if (since <= 1 || since > FIRST_HISTORY_BATCH) return undefined;
    const between = await this.chats.listBranch(chat, {
      throughId: answered.id,
      afterSeq: window.lastSeq,
      limit: since,
    });
    if (between[0]?.parentId !== window.lastId || between[between.length - 1].id !== answered.id) return undefined;
    this.extend(chat, window, between);
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
    const last = newer[newer.length - 1];
    window.lastId = last.id;
    window.lastSeq = last.seq;
    this.trim(window);
    // Deleted first: setting the same object again would keep the size it had.
    this.windows.delete(chat.chatId);
    this.windows.set(chat.chatId, window);
  }

  /** Reads the branch back from `answered` until its messages fill the budget, and keeps them. */
  private async read(chat: ChatKey, answered: ContextMessage, budget: number): Promise<KeptWindow> {
    const newestFirst: ContextMessage[] = [];
    let tokens = 0;
    let fromStart = false;
    let throughId: string | null = answered.id;
    for (let limit = FIRST_HISTORY_BATCH; tokens < budget; limit = Math.min(limit * 2, MAX_HISTORY_BATCH)) {
      const batch = await this.chats.listRecentMessages(chat, { throughId, limit });
      for (const stored of batch) {
        newestFirst.push(stored);
        tokens += costOf(stored);
        if (tokens >= budget) break;
      }
      throughId = batch.length < limit ? null : batch[batch.length - 1].parentId;
      if (throughId === null) {
        fromStart = tokens < budget;
        break;
      }
    }
    const oldestFirst = newestFirst.reverse();
    const window: KeptWindow = {
      messages: oldestFirst.map(llmMessage),
      costs: oldestFirst.map(costOf),
      tokens,
      budget,
      lastId: answered.id,
      lastSeq: answered.seq,
      fromStart,
    };
    this.windows.set(chat.chatId, window);
    return window;
  }

  /** Drops the oldest messages the budget no longer needs, once there are enough of them. */
  private trim(window: KeptWindow): void {
    let drop = 0;
    let tokens = window.tokens;
    while (drop < window.costs.length && tokens - window.costs[drop] >= window.budget) {
      tokens -= window.costs[drop];
      drop++;
    }
    if (drop < TRIM_BATCH && window.tokens - tokens < window.budget) return;
    window.tokens = tokens;
    window.messages.splice(0, drop);
    window.costs.splice(0, drop);
    window.fromStart = false;
  }
}
