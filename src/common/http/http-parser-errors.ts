import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger as Pino } from 'pino';
import { plainProblem, PROBLEM_CONTENT_TYPE } from '../problem-details/problem-details.filter';

/** The statuses Node's own answer gives (its `socketOnError`), by error code; anything else is a 400. */
const REFUSALS: Record<string, { status: number; detail: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, detail: "The request's headers are too large." },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, detail: "The request's chunk extensions are too large." },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'The request did not arrive in time.' },
};
const UNREADABLE = { status: 400, detail: 'The request could not be read as HTTP.' };

/**
 * Answers what Node's HTTP parser refuses (headers too large, a malformed request line or header, a
 * request too slow to arrive) with a problem document, where Node answers a bare status. No
 * middleware runs for these, so the answer has no CORS or helmet headers; with no path to name,
 * `instance` is `urn:uuid:` and the response's X-Request-Id, which the one log line carries too.
 */
export function answerHttpParserErrors(server: Server, logger: Pino): void {
  server.on('clientError', (error: NodeJS.ErrnoException, duplex) => {
    const socket = duplex as Socket & { _httpMessage?: ServerResponse };
    // The client is gone, or was answered already: the parser fails again on whatever follows.
    if (error.code === 'ECONNRESET' || !socket.writable) return;
    // Part of a response went out on this connection (the test Node makes): another would corrupt it.
    if (socket._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const { status, detail } = REFUSALS[error.code ?? ''] ?? UNREADABLE;
    const id = randomUUID();
    const body = JSON.stringify(plainProblem(status, detail, `urn:uuid:${id}`));
    const head = [
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
      `Content-Type: ${PROBLEM_CONTENT_TYPE}`,
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
      `X-Request-Id: ${id}`,
    ];
    // Closed once sent, as Node does: the parser cannot read another request on this connection.
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy());
    logger.info(
      { req: { id, remoteAddress: socket.remoteAddress }, res: { statusCode: status }, code: error.code },
      'request refused by the HTTP parser',
    );
  });
}
