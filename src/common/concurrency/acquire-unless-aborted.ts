/**
 * Waits for a lock's grant unless `signal` aborts first: then it rejects at once with the signal's
 * reason, and the grant, whenever it comes, is handed straight to `release`. async-mutex (0.5) can
 * only cancel every waiter of a lock at once, so a single waiter gives up this way, as the
 * library's own `withTimeout` does for a timeout: its place passes on in order, and nothing leaks.
 */
export function acquireUnlessAborted<G>(
  acquire: () => Promise<G>,
  release: (grant: G) => void,
  signal: AbortSignal | undefined,
): Promise<G> {
  if (!signal) return acquire();
  // An aborted caller does not queue at all.
  signal.throwIfAborted();
  const granted = acquire();
  return new Promise<G>((resolve, reject) => {
    const giveUp = () => reject(signal.reason);
    signal.addEventListener('abort', giveUp, { once: true });
    granted.then(
      (grant) => {
        signal.removeEventListener('abort', giveUp);
        if (signal.aborted) release(grant);
        else resolve(grant);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', giveUp);
        reject(error);
      },
    );
  });
}
