import type { NextFunction, Request, Response } from 'express';
import { Metrics } from './metrics';

/** The status of a request whose client left before its answer was sent whole (as nginx logs it). */
const CLIENT_LEFT = '499';

/**
 * Times every request by its route template (`/chats/:chatId`), never the raw path, so ids do
 * not explode the label set; requests that match no route count as `unmatched`, and those whose
 * client left before the whole answer was sent (a dropped stream) as status 499; an answer the
 * service cut part way keeps its 5xx.
 */
export function httpMetrics(metrics: Metrics) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const stop = metrics.httpRequestDuration.startTimer({ method: request.method });
    const done = () => {
      response.off('finish', done);
      response.off('close', done);
      const template = request.route?.path as string | undefined;
      // Nest answers unknown routes from a catch-all wildcard route; none of ours has a wildcard.
      const matched = template !== undefined && !template.includes('*');
      stop({
        route: matched ? `${request.baseUrl}${template}` : 'unmatched',
        // A service that failed part way, and cut the answer, said so in the status.
        status: response.writableFinished || response.statusCode >= 500 ? String(response.statusCode) : CLIENT_LEFT,
      });
    };
    response.on('finish', done);
    response.on('close', done);
    next();
  };
}
