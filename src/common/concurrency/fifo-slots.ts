/**
 * `limit` slots, given out first come, first served. Taking a free slot and giving one back cost
 * the same whatever the limit: async-mutex 0.5's Semaphore walks every free slot on each release,
 * which at LLM_MAX_CONCURRENCY's default of 4,096 cost about 6 µs of every turn (docs/performance.md).
 */
export class FifoSlots {
  private free: number;
  /** Each waiter's grant, in the order they came; a Set, so one that gives up leaves at once. */
  private readonly waiting = new Set<() => void>();

  constructor(limit: number) {
    this.free = limit;
  }

  /**
   * Resolves with the slot's release once one is this caller's. A caller whose `signal` aborts
   * while it waits leaves the line: it rejects with the signal's reason and keeps no slot.
   */
  async take(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.free > 0 && this.waiting.size === 0) {
      this.free--;
      return this.releaseOnce();
    }
    await new Promise<void>((resolve, reject) => {
      const giveUp = () => {
        this.waiting.delete(grant);
        reject(signal!.reason);
      };
      const grant = () => {
        signal?.removeEventListener('abort', giveUp);
        resolve();
      };
      this.waiting.add(grant);
      signal?.addEventListener('abort', giveUp, { once: true });
    });
    const release = this.releaseOnce();
    // Aborted in the tick its slot came: the slot passes on, as it would have a moment earlier.
    if (signal?.aborted) {
      release();
      throw signal.reason;
    }
    return release;
  }

  private releaseOnce(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // A slot given back goes straight to the first in line.
      const next = this.waiting.values().next();
      if (next.done) {
        this.free++;
      } else {
        this.waiting.delete(next.value);
        next.value();
      }
    };
  }
}
