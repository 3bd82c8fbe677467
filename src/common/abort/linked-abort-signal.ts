/** A signal that aborts when any of its sources does, until released. */
export interface LinkedAbortSignal {
  readonly signal: AbortSignal;
  /** Detaches from the sources; call it when the work that used the signal is over. */
  release(): void;
}

/**
 * Like `AbortSignal.any`, but for a source that lives much longer than the linked signal (the
 * service's shutdown signal): Node 20 keeps every `AbortSignal.any` signal that has an `abort`
 * listener (the HTTP client adds one and never removes it) alive until a source aborts, so one
 * leaked per turn. This one is an ordinary signal the sources only reach through listeners that
 * `release()` removes.
 */
export function linkAbortSignals(...sources: AbortSignal[]): LinkedAbortSignal {
  const controller = new AbortController();
  const aborted = sources.find((source) => source.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, release: () => undefined };
  }
  const listeners = sources.map((source) => {
    const onAbort = () => controller.abort(source.reason);
    source.addEventListener('abort', onAbort, { once: true });
    return () => source.removeEventListener('abort', onAbort);
  });
  return {
    signal: controller.signal,
    release: () => {
      for (const remove of listeners) remove();
    },
  };
}
