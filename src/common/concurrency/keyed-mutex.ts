import { Mutex } from 'async-mutex';
import { acquireUnlessAborted } from './acquire-unless-aborted';

interface Entry {
  mutex: Mutex;
  users: number;
}

/**
 * One FIFO mutex per key, created on first use and dropped as soon as nobody holds or waits
 * for it, so locks of idle or deleted chats never pile up.
 */
export class KeyedMutex {
  private readonly entries = new Map<string, Entry>();

  /** How many keys currently have a holder or waiters. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `work` once it holds the key's mutex. A caller whose `signal` aborts while it waits leaves
   * the line: it rejects with the signal's reason and `work` never runs.
   */
  async runExclusive<T>(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { mutex: new Mutex(), users: 0 };
      this.entries.set(key, entry);
    }
    entry.users += 1;
    try {
      const { mutex } = entry;
      // The entry may be dropped while a grant is due to a caller that left: nobody else waits on
      // that mutex then, and the grant is released as it comes.
      const release = await acquireUnlessAborted(mutex, (late) => late(), signal);
      try {
        return await work();
      } finally {
        release();
      }
    } finally {
      entry.users -= 1;
      if (entry.users === 0) this.entries.delete(key);
    }
  }
}
