import { Inject, Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { ChatKey } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { KeyedMutex } from '../common/concurrency/keyed-mutex';
import { messageOf } from '../common/errors/error-message';
import { ChatDigest } from './chat-digest';
import { ChatDigestStore } from './chat-digest.store';
import { TextAnalyzer } from './text-analyzer';

/**
 * When digests are brought up to date without a summary being asked for, and how; and how much of
 * them is kept in memory.
 */
export interface ChatDigestPolicy {
  /** A chat with no new message for this long is quiet. */
  quietMs: number;
  /** A quiet chat with at least this many messages not yet analysed is folded in the background. */
  quietBacklog: number;
  /** A chat with this many messages not yet analysed is folded in the background at once, quiet or not. */
  eagerBacklog: number;
  /** Messages folded in since the stored digest that make it worth storing again. */
  saveEvery: number;
  /** Messages analysed between yields to the event loop, so a long fold never holds up a turn for long. */
  slice: number;
  /**
   * Bytes of digests kept in memory, over all chats, as {@link ChatDigest.size} counts them. The
   * least recently used go first; a digest larger than all of it is used and let go.
   */
  liveBytes: number;
}

/**
 * Summaries of chats under a few hundred messages are fast from scratch, so only larger backlogs
 * are folded ahead of time, and busy chats only when far behind: analysis costs CPU that turns need.
 */
export const DEFAULT_CHAT_DIGEST_POLICY: ChatDigestPolicy = {
  quietMs: 2_000,
  quietBacklog: 200,
  eagerBacklog: 1_500,
  saveEvery: 100,
  slice: 25,
  // About 40 MB of heap: ChatDigest.size counts high.
  liveBytes: 64 * 1024 * 1024,
};

/** DI token of the policy; tests bind their own. */
export const CHAT_DIGEST_POLICY = Symbol('CHAT_DIGEST_POLICY');

const PAGE = 500;

interface LiveDigest {
  digest: ChatDigest;
  /** The `lastSeq` of the digest as last stored. */
  savedSeq: number;
}

/**
 * Each chat's {@link ChatDigest}: kept in memory, stored with the chat ({@link ChatDigestStore}) so
 * a restart does not start over, and folded in the background once a chat has a backlog worth
 * it, so even a first summary of a long chat has little left to analyse. Folds of one chat run
 * one at a time, and background folds one after another.
 */
@Injectable()
export class ChatDigests implements OnModuleDestroy {
  private readonly logger = new Logger(ChatDigests.name);
  private readonly policy: ChatDigestPolicy;
  private readonly live: LRUCache<string, LiveDigest>;
  private readonly folds = new KeyedMutex();
  /** How far each digest was folded, outliving its eviction, so an evicted one is not restored for nothing. */
  private readonly foldedSeqs = new LRUCache<string, number>({ max: 100_000 });
  /** Chats with messages stored since their last fold: their key, latest seq and when it came. */
  private readonly behind = new Map<string, { key: ChatKey; seq: number; at: number }>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly queued = new Set<string>();
  private background: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly repository: ChatRepository,
    private readonly store: ChatDigestStore,
    private readonly analyzer: TextAnalyzer,
    @Optional() @Inject(CHAT_DIGEST_POLICY) policy?: ChatDigestPolicy,
  ) {
    this.policy = policy ?? DEFAULT_CHAT_DIGEST_POLICY;
    this.live = new LRUCache({
      max: 10_000,
      maxSize: this.policy.liveBytes,
      sizeCalculation: ({ digest }) => digest.size,
    });
  }

  /** Bytes of the digests kept in memory, as {@link ChatDigest.size} counts them. */
  get liveBytes(): number {
    return this.live.calculatedSize;
  }

  /** The chat's digest with every message stored so far folded in. The caller has checked the chat exists. */
  current(key: ChatKey): Promise<ChatDigest> {
    return this.folds.runExclusive(key.chatId, () => this.bringUpToDate(key, { background: false }));
  }

  /**
   * The chat was deleted: its digest leaves memory now, and again once a fold of the chat that
   * was running has ended (it would keep the digest). Its stored digest went with the chat.
   */
  forget({ chatId }: ChatKey): Promise<void> {
    this.drop(chatId);
    return this.folds.runExclusive(chatId, async () => this.drop(chatId));
  }

  /** A turn stored the chat's messages up to `seq`. Cheap: the fold, if one is due, runs later. */
  noteStored(key: ChatKey, seq: number): void {
    if (this.stopped) return;
    // A digest not in memory counts as empty: folding it first restores it from the store.
    if (seq - this.foldedSeq(key.chatId) >= this.policy.eagerBacklog) {
      this.behind.delete(key.chatId);
      this.foldInBackground(key);
      return;
    }
    this.behind.set(key.chatId, { key, seq, at: Date.now() });
    this.sweepTimer ??= setTimeout(() => this.foldQuietChats(), this.policy.quietMs).unref();
  }

  /** Resolves when no background fold is queued or running. */
  async idle(): Promise<void> {
    let last: Promise<void>;
    do {
      last = this.background;
      await last;
    } while (last !== this.background);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    await this.idle();
  }

  private drop(chatId: string): void {
    this.live.delete(chatId);
    this.foldedSeqs.delete(chatId);
    this.behind.delete(chatId);
  }

  /** How far the chat's digest is known to be folded; 0 when unknown (restoring it tells). */
  private foldedSeq(chatId: string): number {
    return this.live.peek(chatId)?.digest.lastSeq ?? this.foldedSeqs.get(chatId) ?? 0;
  }

  private foldQuietChats(): void {
    this.sweepTimer = null;
    const now = Date.now();
    for (const [chatId, { key, seq, at }] of this.behind) {
      if (now - at < this.policy.quietMs) continue;
      this.behind.delete(chatId);
      if (seq - this.foldedSeq(chatId) >= this.policy.quietBacklog) this.foldInBackground(key);
    }
    if (this.behind.size > 0 && !this.stopped) {
      this.sweepTimer = setTimeout(() => this.foldQuietChats(), this.policy.quietMs).unref();
    }
  }

  private foldInBackground(key: ChatKey): void {
    if (this.queued.has(key.chatId)) return;
    this.queued.add(key.chatId);
    this.background = this.background.then(async () => {
      this.queued.delete(key.chatId);
      if (this.stopped) return;
      try {
        await this.folds.runExclusive(key.chatId, () => this.bringUpToDate(key, { background: true }));
      } catch (error) {
        // Derived data: the next summary folds what this could not.
        this.logger.warn(`Could not fold chat ${key.chatId}'s digest: ${messageOf(error)}`);
      }
    });
  }

  private async bringUpToDate(key: ChatKey, { background }: { background: boolean }): Promise<ChatDigest> {
    const live = this.live.get(key.chatId) ?? (await this.restore(key));
    const { digest } = live;
    await this.foldNewMessages(key, digest, background);
    // Deleted and set again, so the cache sees the digest's new size. An empty one (or a deleted
    // chat's) is not worth keeping; one larger than the cache is not kept either.
    this.live.delete(key.chatId);
    if (digest.lastSeq > 0) {
      this.live.set(key.chatId, live);
      this.foldedSeqs.set(key.chatId, digest.lastSeq);
    }
    if (digest.lastSeq - live.savedSeq >= this.policy.saveEvery) {
      try {
        await this.store.save(key, { lastSeq: digest.lastSeq, snapshot: digest.toSnapshot() });
        live.savedSeq = digest.lastSeq;
      } catch (error) {
        // The summary is right without it: the next fold tries again.
        this.logger.warn(`Could not store chat ${key.chatId}'s digest: ${messageOf(error)}`);
      }
    }
    return digest;
  }

  private async restore(key: ChatKey): Promise<LiveDigest> {
    const stored = await this.store.load(key);
    let digest: ChatDigest | null = null;
    try {
      digest = stored && ChatDigest.fromSnapshot(stored.snapshot);
    } catch (error) {
      this.logger.warn(`Chat ${key.chatId}'s stored digest is unreadable, so it is rebuilt: ${messageOf(error)}`);
    }
    // A digest of another version is rebuilt, and stored again once rebuilt.
    return digest && stored ? { digest, savedSeq: stored.lastSeq } : { digest: new ChatDigest(), savedSeq: 0 };
  }

  /** A background fold stops early at shutdown: what is folded so far is a valid digest. */
  private async foldNewMessages(key: ChatKey, digest: ChatDigest, background: boolean): Promise<void> {
    for (;;) {
      const page = await this.repository.listMessages(key, { limit: PAGE, afterSeq: digest.lastSeq });
      for (let i = 0; i < page.length; i++) {
        if (i > 0 && i % this.policy.slice === 0) {
          await yieldToEventLoop();
          if (background && this.stopped) return;
        }
        digest.add(page[i], this.analyzer.analyze(page[i].content));
      }
      if (page.length < PAGE) return;
    }
  }
}
