import { KeyedMutex } from '../../src/common/concurrency/keyed-mutex';
import { deferred } from '../support/deferred';

describe(KeyedMutex.name, () => {
  it('should run work for one key one at a time, first come first served', async () => {
    const locks = new KeyedMutex();
    const order: number[] = [];
    const gate = deferred();
    const first = locks.runExclusive('chat', async () => {
      await gate.promise;
      order.push(0);
    });
    const rest = Array.from({ length: 10 }, (_, i) =>
      locks.runExclusive('chat', async () => {
        order.push(i + 1);
      }),
    );
    gate.resolve();
    await Promise.all([first, ...rest]);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('should not make different keys wait for each other', async () => {
    const locks = new KeyedMutex();
    const gate = deferred();
    const held = locks.runExclusive('a', () => gate.promise);
    await expect(locks.runExclusive('b', async () => 'b ran')).resolves.toBe('b ran');
    gate.resolve();
    await held;
  });

  it('should let a waiter whose signal aborts leave at once, and still forget the key', async () => {
    const locks = new KeyedMutex();
    const gate = deferred();
    const held = locks.runExclusive('a', () => gate.promise);
    const leaving = new AbortController();
    const left = locks.runExclusive('a', async () => 'ran', leaving.signal);
    leaving.abort('stopped');

    await expect(left).rejects.toBe('stopped');
    gate.resolve();
    await held;
    await expect(locks.runExclusive('a', async () => 'next')).resolves.toBe('next');
    expect(locks.size).toBe(0);
  });

  it('should forget a key once nobody holds or waits for it, even when work fails', async () => {
    const locks = new KeyedMutex();
    const gate = deferred();
    const held = locks.runExclusive('a', () => gate.promise);
    const waiting = locks.runExclusive('a', async () => {
      throw new Error('fails');
    });
    expect(locks.size).toBe(1);
    gate.resolve();
    await held;
    await expect(waiting).rejects.toThrow('fails');
    expect(locks.size).toBe(0);
    await Promise.all(Array.from({ length: 100 }, (_, i) => locks.runExclusive(`chat-${i}`, async () => i)));
    expect(locks.size).toBe(0);
  });
});
