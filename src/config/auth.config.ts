import { Transform } from 'class-transformer';
import { IsOptional, IsString } from 'class-validator';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { configSlice, emptyToUndefined, Environment, InvalidConfigError, readVariables } from './env';

/** A tenant's API key as the service keeps it: only the SHA-256 of the key, never the key. */
export interface ApiKey {
  tenantId: string;
  sha256: Buffer;
}

/** Tenants' keys (hashed); none: the service runs open, every caller in one tenant. */
export interface AuthConfig {
  apiKeys: ApiKey[];
}

const TENANT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const MIN_KEY_LENGTH = 16;
const SHA256_HEX = /^[0-9a-f]{64}$/i;

export const sha256 = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

class AuthVariables {
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  API_KEYS?: string;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsString()
  API_KEYS_FILE?: string;
}

const invalid = (reason: string) => new InvalidConfigError(`Invalid configuration: ${reason}`);

function tenantOf(entry: string, variable: string, line?: number): [tenantId: string, secret: string] {
  const where = line === undefined ? variable : `${variable} line ${line}`;
  const colon = entry.indexOf(':');
  if (colon < 0) throw invalid(`${where}: an entry must be <tenant>:<key>`);
  const tenantId = entry.slice(0, colon).trim();
  if (!TENANT_ID_PATTERN.test(tenantId)) {
    throw invalid(`${where}: tenant ${JSON.stringify(tenantId)} must be 1–64 letters, digits, '.', '_' or '-'`);
  }
  return [tenantId, entry.slice(colon + 1).trim()];
}

/** `API_KEYS=acme:<key>,globex:<key>`: plain keys, hashed as they are read. */
function parseApiKeysVariable(value: string): ApiKey[] {
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const [tenantId, key] = tenantOf(entry, 'API_KEYS');
      if (key.length < MIN_KEY_LENGTH) {
        throw invalid(`API_KEYS: the key of tenant ${tenantId} is shorter than ${MIN_KEY_LENGTH} characters`);
      }
      return { tenantId, sha256: sha256(key) };
    });
}

/** An API_KEYS_FILE: one `<tenant>:<sha256 hex of the key>` a line; blank lines and `#` comments skipped. */
function parseApiKeysFile(path: string): ApiKey[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw invalid(`API_KEYS_FILE=${JSON.stringify(path)} cannot be read (${(error as Error).message})`);
  }
  const keys: ApiKey[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const entry = raw.replace(/#.*$/, '').trim();
    if (entry === '') return;
    const [tenantId, hash] = tenantOf(entry, 'API_KEYS_FILE', index + 1);
    if (!SHA256_HEX.test(hash)) {
      throw invalid(`API_KEYS_FILE line ${index + 1}: the key hash must be 64 hex digits (SHA-256)`);
    }
    keys.push({ tenantId, sha256: Buffer.from(hash, 'hex') });
  });
  return keys;
}

/** Two tenants with the same key would make the key's owner ambiguous. */
function assertDistinctKeys(keys: ApiKey[]): void {
  const seen = new Map<string, string>();
  for (const { tenantId, sha256: hash } of keys) {
    const other = seen.get(hash.toString('hex'));
    if (other !== undefined && other !== tenantId)
      throw invalid(`API_KEYS: tenants ${other} and ${tenantId} share a key`);
    seen.set(hash.toString('hex'), tenantId);
  }
}

export function parseAuthConfig(env: Environment): AuthConfig {
  const vars = readVariables(AuthVariables, env);
  const apiKeys = [
    ...(vars.API_KEYS === undefined ? [] : parseApiKeysVariable(vars.API_KEYS)),
    ...(vars.API_KEYS_FILE === undefined ? [] : parseApiKeysFile(vars.API_KEYS_FILE)),
  ];
  assertDistinctKeys(apiKeys);
  return { apiKeys };
}

export const authConfig = configSlice('auth', parseAuthConfig);
