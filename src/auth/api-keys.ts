import { timingSafeEqual } from 'node:crypto';
import { ApiKey, sha256 } from '../config/auth.config';

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
