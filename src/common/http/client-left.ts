import type { Response } from 'express';

/** Calls `then` once if the client goes away before the response was fully sent. */
export function onClientLeft(response: Response, then: () => void): void {
  response.once('close', () => {
    if (!response.writableFinished) then();
  });
}
