import type { NextFunction, Request, Response } from 'express';
import { Metrics } from './metrics';

/**
 * Times every request by its route template (`/chats/:chatId`), never the raw path, so ids do
 * not explode the label set; requests that match no route count as `unmatched`.
 */
export function httpMetrics(metrics: Metrics) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const stop = metrics.httpRequestDuration.startTimer({ method: request.method });
    response.once('finish', () => {
      const template = request.route?.path as string | undefined;
      // Nest answers unknown routes from a catch-all wildcard route; none of ours has a wildcard.
      const matched = template !== undefined && !template.includes('*');
      stop({ route: matched ? `${request.baseUrl}${template}` : 'unmatched', status: String(response.statusCode) });
    });
    next();
  };
}
