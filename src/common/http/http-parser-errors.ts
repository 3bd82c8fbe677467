import { randomUUID } from 'node:crypto';
import { type IncomingMessage, STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { NextFunction, Request, Response } from 'express';
import { BadRequestException } from '@nestjs/common';
import type { Logger as Pino } from 'pino';
import { pathOf, plainProblem, PROBLEM_CONTENT_TYPE } from '../problem-details/problem-details.filter';

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

/**
 * Node answers two more requests bare, outside `clientError`: an Expect other than 100-continue
 * (417), and an HTTP/1.1 request without Host (400). The first is answered here; the second is let
 * through to {@link requireHostHeader}, which answers it as the app answers any bad request.
 */
export function answerUnmetRequirements(server: Server, logger: Pino): void {
  // An option of http.createServer, read per request (Node 20), which Nest gives no way to pass.
  Object.assign(server, { requireHostHeader: false });
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    const id = randomUUID();
    const body = JSON.stringify(
      plainProblem(417, 'The service meets no Expect but 100-continue.', pathOf(request as Request)),
    );
    response.shouldKeepAlive = false;
    response.writeHead(417, {
      'Content-Type': PROBLEM_CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(body),
      'X-Request-Id': id,
    });
    response.end(body);
    logger.info(
      { req: { id, method: request.method, remoteAddress: request.socket.remoteAddress }, res: { statusCode: 417 } },
      'request refused: an Expect the service cannot meet',
    );
  });
}

/** An HTTP/1.1 request names its Host (RFC 9112 §3.2); Node's own check is off, for a problem document. */
export function requireHostHeader(request: Request, response: Response, next: NextFunction): void {
  const http11 = request.httpVersionMajor === 1 && request.httpVersionMinor === 1;
  if (http11 && request.headers.host === undefined) {
    // Closed after, as Node closes it: a client this far off may not frame the next request either.
    response.setHeader('Connection', 'close');
    next(new BadRequestException('An HTTP/1.1 request must carry a Host header.'));
    return;
  }
  next();
}
