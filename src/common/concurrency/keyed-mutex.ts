import { Mutex } from 'async-mutex';

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

  async runExclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { mutex: new Mutex(), users: 0 };
      this.entries.set(key, entry);
    }
    entry.users += 1;
    try {
      return await entry.mutex.runExclusive(work);
    } finally {
      entry.users -= 1;
      if (entry.users === 0) this.entries.delete(key);
    }
  }
}
