import { isUUID } from 'class-validator';
import { RequestValidationError } from '../errors/domain-error';

/**
 * Opaque list cursors. Each names the list it belongs to (its `scope`), so a cursor from one
 * list is rejected by another instead of silently paging the wrong thing.
 */
export function encodeCursor(scope: string, position: string | number | object): string {
  return Buffer.from(JSON.stringify({ s: scope, p: position })).toString('base64url');
}

export function decodeCursor<P extends string | number>(
  cursor: string,
  scope: string,
  kind: P extends number ? 'number' : 'string' | 'uuid',
): P;
/** A cursor whose position `isPosition` accepts: only what the service could have issued. */
export function decodeCursor<P>(cursor: string, scope: string, isPosition: (p: unknown) => p is P): P;
export function decodeCursor<P>(
  cursor: string,
  scope: string,
  kind: 'number' | 'string' | 'uuid' | ((p: unknown) => p is P),
): P {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  const { s, p } = (parsed ?? {}) as { s?: unknown; p?: unknown };
  if (s !== scope || !(typeof kind === 'function' ? kind(p) : isPosition(p, kind))) {
    throw new RequestValidationError([{ field: 'cursor', message: 'cursor does not belong to this list' }]);
  }
  return p as P;
}

/** A number position is a message's seq, which PostgreSQL stores as a 32-bit integer. */
const LARGEST_NUMBER_POSITION = 2 ** 31 - 1;

/** A seq (or 0, before the first) that every storage can be queried with. */
export function isSeqPosition(position: unknown): position is number {
  return Number.isSafeInteger(position) && (position as number) >= 0 && (position as number) <= LARGEST_NUMBER_POSITION;
}

/** Only positions the service could have issued: forged ones must not reach a query. */
function isPosition(position: unknown, kind: 'number' | 'string' | 'uuid'): boolean {
  if (kind === 'number') return isSeqPosition(position);
  return typeof position === 'string' && (kind === 'string' || isUUID(position));
}

/** One page of a list, as every list endpoint answers it. */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}
