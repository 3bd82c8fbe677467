/** How many chats' stops announced while none of their turns ran here are kept (see unheardStops). */
const UNHEARD_STOPS_KEPT = 1_000;

/** A wait for a chat's lease to be released; `released` is false when the wait timed out. */
export interface ReleaseWait {
  released: Promise<boolean>;
  cancel(): void;
}

/**
 * How an instance waiting for a chat's lease learns it may be free. This base class only polls:
 * every wait ends after its timeout. Dialects with notifications wake waiters sooner.
 */
export class LeaseReleaseSignals {
  private readonly waiting = new Map<string, Set<() => void>>();

  private readonly stopWatchers = new Map<string, Set<() => void>>();
  private stopPoll: NodeJS.Timeout | undefined;
  /**
   * Chats whose stop was announced while no turn of theirs ran here, newest last: a turn that took
   * the chat's lease just before may not watch yet. Its first watch looks once; a stale entry costs
   * one look at a mark that a lease taken anew never has.
   */
  private readonly unheardStops = new Set<string>();

  /**
   * @param maxPollMs the longest pause between two looks at a lease when no signal comes
   * @param stopPollMs how often a running turn looks for a stop request when none is announced
   */
  constructor(
    readonly maxPollMs: number,
    private readonly stopPollMs = 250,
  ) {}

  /**
   * Calls `check` whenever a stop may have been requested for the chat's running turn: when one is
   * announced, and every `stopPollMs` while announcements do not reach this instance (always, for
   * dialects without notifications). Returns how to stop watching.
   */
  watchForStop(chatId: string, check: () => void): () => void {
    const watchers = this.stopWatchers.get(chatId) ?? new Set();
    watchers.add(check);
    this.stopWatchers.set(chatId, watchers);
    this.pollForStops();
    if (this.unheardStops.delete(chatId)) check();
    return () => {
      watchers.delete(check);
      if (watchers.size === 0) this.stopWatchers.delete(chatId);
    };
  }

  /**
   * Running turns look for stops every `stopPollMs` while announcements do not reach this instance
   * ({@link notifies}), with one timer for them all; it ends once they do, or once no turn runs.
   */
  protected pollForStops(): void {
    if (this.stopPoll || this.notifies || this.stopWatchers.size === 0) return;
    this.stopPoll = setInterval(() => {
      if (this.notifies || this.stopWatchers.size === 0) {
        clearInterval(this.stopPoll);
        this.stopPoll = undefined;
        return;
      }
      for (const chatId of [...this.stopWatchers.keys()]) this.stopAnnounced(chatId);
    }, this.stopPollMs);
    this.stopPoll.unref();
  }

  /** Tells the instance that runs the chat's turn that a stop was requested for it. */
  async announceStop(_chatId: string): Promise<void> {
    // Polling only: the running turn looks by itself.
  }

  /** Whether announcements reach this instance now (then nobody polls for stops). */
  protected get notifies(): boolean {
    return false;
  }

  protected stopAnnounced(chatId: string): void {
    const watchers = this.stopWatchers.get(chatId);
    if (watchers) {
      for (const check of [...watchers]) check();
      return;
    }
    // Every instance hears every stop: most are for turns that run elsewhere.
    this.unheardStops.delete(chatId);
    this.unheardStops.add(chatId);
    if (this.unheardStops.size > UNHEARD_STOPS_KEPT) this.unheardStops.delete(this.unheardStops.values().next().value!);
  }

  /** Start waiting before looking at the lease, so a release announced meanwhile is not missed. */
  waitForRelease(chatId: string, timeoutMs: number): ReleaseWait {
    let settle!: (released: boolean) => void;
    const released = new Promise<boolean>((resolve) => (settle = resolve));
    const wake = () => finish(true);
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (value: boolean) => {
      clearTimeout(timer);
      const wakers = this.waiting.get(chatId);
      wakers?.delete(wake);
      if (wakers?.size === 0) this.waiting.delete(chatId);
      settle(value);
    };
    const wakers = this.waiting.get(chatId) ?? new Set();
    wakers.add(wake);
    this.waiting.set(chatId, wakers);
    return { released, cancel: () => finish(false) };
  }

  /** Tells the instances waiting for the chat that its lease was released. */
  async announceRelease(_chatId: string): Promise<void> {
    // Polling only: the waiters will look by themselves.
  }

  async close(): Promise<void> {
    clearInterval(this.stopPoll);
    this.stopPoll = undefined;
  }

  protected wake(chatId: string): void {
    for (const wake of [...(this.waiting.get(chatId) ?? [])]) wake();
  }

  /** After missed signals (a lost connection), every waiter and running turn looks again. */
  protected wakeAll(): void {
    for (const chatId of [...this.waiting.keys()]) this.wake(chatId);
    for (const chatId of [...this.stopWatchers.keys()]) this.stopAnnounced(chatId);
  }
}
