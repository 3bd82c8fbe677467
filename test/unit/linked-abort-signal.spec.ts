import { linkAbortSignals } from '../../src/common/abort/linked-abort-signal';

describe(linkAbortSignals.name, () => {
  it('should abort when any source aborts, with its reason', () => {
    const client = new AbortController();
    const shutdown = new AbortController();
    const { signal } = linkAbortSignals(client.signal, shutdown.signal);
    expect(signal.aborted).toBe(false);
    shutdown.abort('stopping');
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('stopping');
  });

  it('should start aborted when a source already is', () => {
    const client = new AbortController();
    client.abort('gone');
    const { signal } = linkAbortSignals(client.signal, new AbortController().signal);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('gone');
  });

  it('should no longer follow its sources once released', () => {
    const shutdown = new AbortController();
    const linked = linkAbortSignals(shutdown.signal);
    linked.release();
    shutdown.abort();
    expect(linked.signal.aborted).toBe(false);
  });
});
