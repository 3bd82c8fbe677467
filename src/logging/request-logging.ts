import type { Request, Response, NextFunction } from 'express';
import { randomUUID } from 'node:crypto';
import type { Logger as Pino } from 'pino';
import { loggableUrl } from '../common/http/loggable-url';

declare module 'http' {
  interface IncomingMessage {
    /** The request's id: the client's `X-Request-Id` when plain, else a new UUID. */
    id?: string;
  }
}

const REQUEST_ID_HEADER = 'x-request-id';
/** A client's request id is used only if it is short and plain, so it cannot forge log lines. */
const ACCEPTABLE_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The client's `X-Request-Id` or a new one, echoed back on the response. */
function requestIdOf(request: Request, response: Response): string {
  const given = request.headers[REQUEST_ID_HEADER];
  const id = typeof given === 'string' && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
  response.setHeader('X-Request-Id', id);
  return id;
}

/**
 * One line per request, written when its response ends (or its client leaves first), carrying its
 * id, method, URL (see loggableUrl), client address and User-Agent, its status and how long it took.
 * A whitelist: no other header is logged, so credentials (Authorization, Cookie, X-Api-Key) never
 * reach the log. The address is Express's `req.ip`, which honours TRUST_PROXY, so behind a load balancer it
 * is the client's. Written with pino directly, with no logger made per request: pino-http's child
 * logger per request cost a turn about as much as the rest of its logging.
 */
export function requestLogging(logger: Pino) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const startedAt = Date.now();
    request.id = requestIdOf(request, response);
    const done = () => {
      response.off('finish', done);
      response.off('close', done);
      const line = {
        req: {
          id: request.id,
          method: request.method,
          url: loggableUrl(request),
          remoteAddress: request.ip,
          userAgent: request.headers['user-agent'],
        },
        res: { statusCode: response.statusCode },
        responseTime: Date.now() - startedAt,
      };
      // A 5xx is a warning here: the error behind it is logged where it is handled, with its stack.
      if (response.statusCode >= 500) logger.warn(line, 'request failed');
      else if (!response.writableFinished) logger.info(line, 'request aborted');
      else logger.info(line, 'request completed');
    };
    response.on('finish', done);
    response.on('close', done);
    next();
  };
}
