import { createHash } from 'node:crypto';
import { tenantForKey } from '../../src/auth/api-keys';
import { InvalidConfigError } from '../../src/config/env';
import { parseAuthConfig } from '../../src/config/auth.config';

const hex = (key: string) => createHash('sha256').update(key).digest('hex');

describe('API keys', () => {
  it('should run open when no keys are configured', () => {
    expect(parseAuthConfig({}).apiKeys).toEqual([]);
  });

  it('should keep only the hash of each key, and find its tenant', () => {
    const { apiKeys } = parseAuthConfig({ API_KEYS: ' acme:acme-key-0123456789 , globex:globex-key-0123456789 ,' });
    expect(apiKeys.map((k) => [k.tenantId, k.sha256.toString('hex')])).toEqual([
      ['acme', hex('acme-key-0123456789')],
      ['globex', hex('globex-key-0123456789')],
    ]);
    expect(JSON.stringify(apiKeys)).not.toContain('acme-key-0123456789');
    expect(tenantForKey(apiKeys, 'acme-key-0123456789')).toBe('acme');
    expect(tenantForKey(apiKeys, 'globex-key-0123456789')).toBe('globex');
    expect(tenantForKey(apiKeys, 'acme-key-012345678')).toBeNull();
    expect(tenantForKey(apiKeys, '')).toBeNull();
  });

  it('should let one tenant have several keys, so keys can be rotated', () => {
    const { apiKeys } = parseAuthConfig({ API_KEYS: 'acme:old-key-0123456789ab,acme:new-key-0123456789ab' });
    expect(tenantForKey(apiKeys, 'old-key-0123456789ab')).toBe('acme');
    expect(tenantForKey(apiKeys, 'new-key-0123456789ab')).toBe('acme');
  });

  it.each([
    ['a key without its tenant', 'acme-key-0123456789', 'API_KEYS: an entry must be <tenant>:<key>'],
    ['a tenant with spaces', 'ac me:acme-key-0123456789', 'API_KEYS: tenant "ac me"'],
    ['a short key', 'acme:short', 'the key of tenant acme is shorter than 16 characters'],
    ['one key for two tenants', 'acme:shared-key-0123456789,globex:shared-key-0123456789', 'share a key'],
  ])('should refuse %s with a line naming API_KEYS', (_case, value, message) => {
    expect(() => parseAuthConfig({ API_KEYS: value })).toThrow(InvalidConfigError);
    expect(() => parseAuthConfig({ API_KEYS: value })).toThrow(message);
    expect(() => parseAuthConfig({ API_KEYS: value })).not.toThrow(/0123456789/);
  });
});
