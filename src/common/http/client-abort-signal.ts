import type { Response } from 'express';

/** A signal that aborts when the client goes away before the response was fully sent. */
export function abortWhenClientLeaves(response: Response): AbortSignal {
  const controller = new AbortController();
  response.once('close', () => {
    if (!response.writableFinished) controller.abort();
  });
  return controller.signal;
}
