import { createHash, timingSafeEqual } from 'node:crypto';

/** A tenant's API key as the service keeps it: only the SHA-256 of the key, never the key. */
export interface ApiKey {
  tenantId: string;
  sha256: Buffer;
}

/** Raised for a malformed API_KEYS or API_KEYS_FILE entry; the message names the variable. */
export class InvalidApiKeysError extends Error {}

export const TENANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MIN_KEY_LENGTH = 16;
const SHA256_HEX = /^[0-9a-f]{64}$/i;

export const sha256 = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

function tenantOf(entry: string, variable: string, line?: number): [tenantId: string, secret: string] {
  const where = line === undefined ? variable : `${variable} line ${line}`;
  const colon = entry.indexOf(':');
  if (colon < 0) throw new InvalidApiKeysError(`${where}: an entry must be <tenant>:<key>`);
  const tenantId = entry.slice(0, colon).trim();
  if (!TENANT_ID_PATTERN.test(tenantId)) {
    throw new InvalidApiKeysError(
      `${where}: tenant ${JSON.stringify(tenantId)} must be 1–64 letters, digits, '.', '_' or '-'`,
    );
  }
  return [tenantId, entry.slice(colon + 1).trim()];
}

/** `API_KEYS=acme:<key>,globex:<key>`: plain keys, hashed as they are read. */
export function parseApiKeysVariable(value: string): ApiKey[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const [tenantId, key] = tenantOf(entry, 'API_KEYS');
      if (key.length < MIN_KEY_LENGTH) {
        throw new InvalidApiKeysError(
          `API_KEYS: the key of tenant ${tenantId} is shorter than ${MIN_KEY_LENGTH} characters`,
        );
      }
      return { tenantId, sha256: sha256(key) };
    });
}

/** An API_KEYS_FILE: one `<tenant>:<sha256 hex of the key>` a line; blank lines and `#` comments skipped. */
export function parseApiKeysFile(text: string): ApiKey[] {
  const keys: ApiKey[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const entry = raw.replace(/#.*$/, '').trim();
    if (entry === '') return;
    const [tenantId, hash] = tenantOf(entry, 'API_KEYS_FILE', index + 1);
    if (!SHA256_HEX.test(hash)) {
      throw new InvalidApiKeysError(`API_KEYS_FILE line ${index + 1}: the key hash must be 64 hex digits (SHA-256)`);
    }
    keys.push({ tenantId, sha256: Buffer.from(hash, 'hex') });
  });
  return keys;
}

/** Two tenants with the same key would make the key's owner ambiguous. */
export function assertDistinctKeys(keys: ApiKey[]): void {
  const seen = new Map<string, string>();
  for (const { tenantId, sha256: hash } of keys) {
    const other = seen.get(hash.toString('hex'));
    if (other !== undefined && other !== tenantId) {
      throw new InvalidApiKeysError(`API_KEYS: tenants ${other} and ${tenantId} share a key`);
    }
    seen.set(hash.toString('hex'), tenantId);
  }
}

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
