import type { NextFunction, Request, Response } from 'express';

const decodes = (segment: string): boolean => {
  try {
    decodeURIComponent(segment);
    return true;
  } catch {
    return false;
  }
};

/**
 * Express's router answers a path parameter it cannot percent-decode (`/chats/%ZZ`, `%C0`) with
 * a 400 before any pipe runs. Such a segment names nothing, so it is taken as written: its `%`
 * signs are escaped, the router hands the route the raw text, and the route answers as for any
 * id it does not know (the id pipes' 404), or no route matches (the unknown route's 404).
 * `originalUrl`, which logs and problem documents show, keeps what the client sent.
 */
export function takeUndecodablePathSegmentsAsWritten(request: Request, _response: Response, next: NextFunction): void {
  const queryAt = request.url.indexOf('?');
  const path = queryAt === -1 ? request.url : request.url.slice(0, queryAt);
  if (path.includes('%')) {
    const segments = path.split('/');
    const escaped = segments.map((segment) => (decodes(segment) ? segment : segment.replaceAll('%', '%25')));
    if (escaped.some((segment, i) => segment !== segments[i])) {
      request.url = escaped.join('/') + (queryAt === -1 ? '' : request.url.slice(queryAt));
    }
  }
  next();
}
