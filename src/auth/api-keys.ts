import { timingSafeEqual } from 'node:crypto';
import { ApiKey, sha256 } from '../config/auth.config';
import { OPEN_TENANT_ID, RequestTenant } from './tenant';
import { UnauthorizedError } from './unauthorized.error';

/**
 * The tenant whose key this is, or null. Every configured key is compared, each in constant
 * time, so the time taken tells nothing about which key or how much of it matched.
 */
export function tenantForKey(keys: readonly ApiKey[], presented: string): string | null {
  const hash = sha256(presented);
  let tenantId: string | null = null;
  for (const key of keys) {
    if (timingSafeEqual(hash, key.sha256) && tenantId === null) tenantId = key.tenantId;
  }
  return tenantId;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The tenant of a request that needs a key, from its Authorization header: `Bearer <key>` with a
 * configured key. Without configured keys, the open tenant. Anything else: {@link UnauthorizedError}.
 */
export function tenantOfRequest(keys: readonly ApiKey[], authorization: unknown): RequestTenant {
  if (keys.length === 0) return { id: OPEN_TENANT_ID, authenticated: false };
  const key = typeof authorization === 'string' ? BEARER.exec(authorization)?.[1] : undefined;
  if (key === undefined) throw new UnauthorizedError('missing');
  const tenantId = tenantForKey(keys, key);
  if (tenantId === null) throw new UnauthorizedError('invalid');
  return { id: tenantId, authenticated: true };
}
