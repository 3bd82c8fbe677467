import { FifoSlots } from '../../src/common/concurrency/fifo-slots';

describe(FifoSlots.name, () => {
  it('should refuse a slot to a waiter whose signal aborts in the tick the slot comes to it, and free the slot', async () => {
    const slots = new FifoSlots(1);
    const release = await slots.take();
    const controller = new AbortController();
    const waiting = slots.take(controller.signal);

    release();
    controller.abort('stopped');

    await expect(waiting).rejects.toBe('stopped');
    const next = new AbortController();
    const taken = slots.take(next.signal);
    // A free slot is taken at once, with no wait that the abort below could interrupt.
    next.abort('too late');
    await expect(taken).resolves.toEqual(expect.any(Function));
  });
});
