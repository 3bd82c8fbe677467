import type { Response } from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Answers 200 with `chunks` as the body, each written as it comes and the next one read only once
 * the client has taken what came before (backpressure), so the whole body is never held. A client
 * that leaves ends the reading; a failure part way cuts the connection, since the status is gone.
 */
export async function streamText(response: Response, contentType: string, chunks: AsyncIterable<string>) {
  response.status(200).type(contentType);
  try {
    await pipeline(Readable.from(failingAs500(chunks, response), { highWaterMark: 1 }), response);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') throw error;
  }
}

/**
 * The chunks; should they fail, the response's status becomes 500 before the connection is cut.
 * The client has its 200 already, but the request log and metrics then count a failure of the
 * service rather than a client that left.
 */
async function* failingAs500(chunks: AsyncIterable<string>, response: Response): AsyncGenerator<string> {
  try {
    yield* chunks;
  } catch (error) {
    response.statusCode = 500;
    throw error;
  }
}
