import type { Request } from 'express';

/**
 * Query parameters whose values say nothing of what users wrote. A search's `q` holds their words,
 * and a parameter the API does not know may hold anything, so their values never reach a log.
 */
const PLAIN_PARAMETERS = new Set(['limit', 'cursor', 'branch', 'format', 'stream', 'abstract', 'lastEventId']);

/** The request's URL as the logs show it: as sent, with the value of every other parameter as `…`. */
export function loggableUrl(request: Request): string {
  const url = request.originalUrl;
  const queryAt = url.indexOf('?');
  if (queryAt === -1) return url;
  const query = url
    .slice(queryAt + 1)
    .split('&')
    .map((parameter) => {
      const equalsAt = parameter.indexOf('=');
      if (equalsAt === -1) return parameter;
      return PLAIN_PARAMETERS.has(decodedName(parameter.slice(0, equalsAt)))
        ? parameter
        : `${parameter.slice(0, equalsAt)}=…`;
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
