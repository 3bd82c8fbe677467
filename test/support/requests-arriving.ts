import type { Server } from 'node:http';

/**
 * Resolves once `count` more HTTP requests have arrived at `server` (an app's `getHttpServer()`):
 * their handlers have begun by then, since the app's listener was added first.
 */
export function requestsArriving(server: Server, count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const onRequest = () => {
      seen += 1;
      if (seen < count) return;
      server.off('request', onRequest);
      resolve();
    };
    server.on('request', onRequest);
  });
}
