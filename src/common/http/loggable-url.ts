import type { Request } from 'express';

/**
 * Query parameters whose values say nothing of what users wrote. A search's `q` holds their words,
 * its `cursor` a digest of them, and a parameter the API does not know may hold anything, so
 * their values (or, without one, their names) never reach a log.
 */
const PLAIN_PARAMETERS = new Set(['limit', 'branch', 'format', 'stream', 'abstract', 'lastEventId']);

/** The request's URL as the logs show it: as sent, with every other parameter's value as `…`. */
export function loggableUrl(request: Request): string {
  const url = request.originalUrl;
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return url;
  const query = url
    .slice(queryAt + 1)
    .split('&')
    .map((parameter) => {
      const equalsAt = parameter.indexOf('=');
      const name = equalsAt === -1 ? parameter : parameter.slice(0, equalsAt);
      if (PLAIN_PARAMETERS.has(decodedName(name))) return parameter;
      return equalsAt === -1 ? '…' : `${name}=…`;
    });
  return `${url.slice(0, queryAt)}?${query.join('&')}`;
}

function decodedName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}
