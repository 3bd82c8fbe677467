import { InvalidConfigError } from '../../src/config/env';
import { unusableAddress } from '../../src/config/http.config';
import { DEFAULT_LLM_MAX_CONCURRENCY, DEFAULT_LLM_MODEL } from '../../src/config/llm.config';
import { describeStorage, missingRedisDatabase, unusableDatabase } from '../../src/config/storage.config';
import { configFrom } from '../support/config';

describe('configuration slices', () => {
  it('should default to port 3000, in-memory storage and the offline provider', () => {
    expect(configFrom({})).toMatchObject({
      http: { port: 3000, host: '0.0.0.0', trustProxy: false, bodyLimit: '1mb', importBodyLimit: '16mb' },
      llm: {
        provider: 'offline',
        defaultModel: DEFAULT_LLM_MODEL,
        timeoutMs: 60_000,
        maxRetries: 2,
        contextTokens: undefined,
        maxOutputTokens: 1024,
      },
      storage: { database: { kind: 'memory' }, chatLockLeaseMs: 30_000 },
      logging: { level: 'info' },
    });
  });

  it('should let a burst of a thousand upstream calls run at once by default', () => {
    expect(DEFAULT_LLM_MAX_CONCURRENCY).toBeGreaterThanOrEqual(1000);
    expect(configFrom({}).llm.maxConcurrency).toBe(DEFAULT_LLM_MAX_CONCURRENCY);
  });

  it.each([
    ['1', 1],
    ['loopback', ['loopback']],
    ['10.0.0.0/8, 192.168.1.7,uniquelocal', ['10.0.0.0/8', '192.168.1.7', 'uniquelocal']],
  ])('should take TRUST_PROXY=%s as %o', (value, trustProxy) => {
    expect(configFrom({ TRUST_PROXY: value }).http.trustProxy).toEqual(trustProxy);
  });

  it.each(['true', '10.0.0.0/33', 'proxy.internal', '11', '999'])(
    'should refuse TRUST_PROXY=%s in one line naming it',
    (value) => {
      expect(() => configFrom({ TRUST_PROXY: value })).toThrow(InvalidConfigError);
      expect(() => configFrom({ TRUST_PROXY: value })).toThrow(/^Invalid configuration: TRUST_PROXY=[^\n]*$/);
    },
  );

  it.each(['true', '999'])('should say why TRUST_PROXY=%s, which trusts every hop, is refused', (value) => {
    expect(() => configFrom({ TRUST_PROXY: value })).toThrow(/any client could name its own address/);
  });

  it.each([
    ['sqlite:./data/konko.db', { kind: 'sqlite', path: './data/konko.db' }],
    ['sqlite:/var/lib/konko/konko.db', { kind: 'sqlite', path: '/var/lib/konko/konko.db' }],
    ['sqlite:///var/lib/konko/konko.db', { kind: 'sqlite', path: '/var/lib/konko/konko.db' }],
    ['postgres://konko:secret@db:5432/konko', { kind: 'postgres', url: 'postgres://konko:secret@db:5432/konko' }],
    [
      'postgresql://127.0.0.1/test?sslmode=disable',
      { kind: 'postgres', url: 'postgresql://127.0.0.1/test?sslmode=disable' },
    ],
  ])('should take DATABASE_URL=%s as %o', (url, storage) => {
    expect(configFrom({ DATABASE_URL: url }).storage.database).toEqual(storage);
  });

  it.each([
    [{ kind: 'memory' as const }, 'in-memory'],
    [{ kind: 'sqlite' as const, path: './data/konko.db' }, 'sqlite (./data/konko.db)'],
    [
      { kind: 'postgres' as const, url: 'postgres://konko:s3cret@db.internal:6432/chats' },
      'postgres (db.internal:6432/chats)',
    ],
    [{ kind: 'postgres' as const, url: 'postgresql://postgres@127.0.0.1/test' }, 'postgres (127.0.0.1:5432/test)'],
  ])('should describe %o as %s, never with a password', (storage, description) => {
    expect(describeStorage(storage)).toBe(description);
  });

  it.each([
    ['EACCES', 'Cannot start: PORT="80" may not be listened on by this user (ports below 1024 need privileges)'],
    ['EAI_AGAIN', 'Cannot start: HOST="0.0.0.0" does not resolve to an address (EAI_AGAIN)'],
    ['EMFILE', undefined],
  ])('should say why the service cannot listen, on %s, naming the setting', (code, line) => {
    const error = Object.assign(new Error(`listen ${code}`), { code });
    expect(unusableAddress(error, configFrom({ PORT: '80' }).http)?.message).toBe(line);
  });

  it('should say why a database cannot be opened in one line, with its password masked everywhere', () => {
    const url = 'postgres://konko:s3cret@db.internal:6432/chats';
    const error = unusableDatabase({ kind: 'postgres', url }, new Error(`cannot parse ${url}`));
    expect(error).toBeInstanceOf(InvalidConfigError);
    expect(error.message).toBe(
      'Cannot start: DATABASE_URL="postgres://konko:***@db.internal:6432/chats" cannot be opened: ' +
        'cannot parse postgres://konko:***@db.internal:6432/chats',
    );
  });

  it('should mask the password of a database URL whose user name holds ? or #', () => {
    for (const user of ['us?er', 'us#er']) {
      const url = `postgres://${user}:s3cret@db.internal/chats`;
      const error = unusableDatabase({ kind: 'postgres', url }, new Error(`cannot parse ${url}`));
      expect(error.message).not.toContain('s3cret');
      expect(error.message).toContain(`postgres://${user}:***@db.internal/chats`);
    }
  });

  it('should name every address a connection to a database tried', () => {
    // Node fails a connection to a name with several addresses (localhost: ::1 and 127.0.0.1) as one
    // AggregateError without a message of its own.
    const refused = new AggregateError([
      new Error('connect ECONNREFUSED ::1:5432'),
      new Error('connect ECONNREFUSED 127.0.0.1:5432'),
    ]);
    expect(unusableDatabase({ kind: 'postgres', url: 'postgres://localhost/chats' }, refused).message).toBe(
      'Cannot start: DATABASE_URL="postgres://localhost/chats" cannot be opened: ' +
        'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432',
    );
  });

  it.each([
    [undefined, 24 * 3_600_000],
    ['90', 90_000],
    ['30m', 1_800_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['60000ms', 60_000],
  ])('should read IDEMPOTENCY_TTL=%s as %d ms', (value, ms) => {
    expect(configFrom(value === undefined ? {} : { IDEMPOTENCY_TTL: value }).limits.idempotencyTtlMs).toBe(ms);
  });

  it.each(['forever', '30s'])('should refuse IDEMPOTENCY_TTL=%s (not a duration, or under a minute)', (value) => {
    expect(() => configFrom({ IDEMPOTENCY_TTL: value })).toThrow('IDEMPOTENCY_TTL');
  });

  it('should read the lease of database chat locks from CHAT_LOCK_LEASE_MS', () => {
    expect(configFrom({ CHAT_LOCK_LEASE_MS: '5000' }).storage.chatLockLeaseMs).toBe(5000);
  });

  it('should point a PostgreSQL URL that does not parse at percent-encoding, without its password', () => {
    const attempt = () => configFrom({ DATABASE_URL: 'postgres://konko:pa/ss@db:5432/konko' });
    expect(attempt).toThrow(
      'Invalid configuration: DATABASE_URL="postgres://konko:***@db:5432/konko" is not a valid URL; if its user name',
    );
  });

  it('should not repeat the password of a refused DATABASE_URL', () => {
    expect(() => configFrom({ DATABASE_URL: 'mysql://konko:s3cret@db/konko' })).toThrow(
      'DATABASE_URL="mysql://konko:***@db/konko"',
    );
  });

  it.each([
    ['BODY_LIMIT', '0'],
    ['BODY_LIMIT', '0kb'],
    ['IMPORT_BODY_LIMIT', '00mb'],
  ])('should refuse %s=%s, a limit no body is under', (variable, value) => {
    expect(() => configFrom({ [variable]: value })).toThrow(
      new InvalidConfigError(
        `Invalid configuration: ${variable}="${value}" is invalid: ${variable} must be a size above 0, such as ` +
          `${variable === 'BODY_LIMIT' ? '1mb' : '16mb'}, 512kb or 100000`,
      ),
    );
  });

  it.each([
    ['BODY_LIMIT', '1'],
    ['BODY_LIMIT', '512kb'],
    ['IMPORT_BODY_LIMIT', '010MB'],
  ])('should take %s=%s', (variable, value) => {
    const { http } = configFrom({ [variable]: value });
    expect(variable === 'BODY_LIMIT' ? http.bodyLimit : http.importBodyLimit).toBe(value);
  });

  it.each([
    'PORT',
    'SSE_PING_INTERVAL_MS',
    'KEEP_ALIVE_TIMEOUT_MS',
    'SHUTDOWN_GRACE_MS',
    'RATE_LIMIT',
    'RATE_LIMIT_WINDOW_MS',
    'MAX_PENDING_TURNS_PER_CHAT',
    'LLM_TIMEOUT_MS',
    'LLM_MAX_RETRIES',
    'LLM_CONTEXT_TOKENS',
    'LLM_MAX_OUTPUT_TOKENS',
    'LLM_MAX_CONCURRENCY',
    'CHAT_LOCK_LEASE_MS',
  ])('should refuse %s=abc for what it is, not for the ranges it would have to be in', (variable) => {
    expect(() => configFrom({ [variable]: 'abc' })).toThrow(
      new InvalidConfigError(
        `Invalid configuration: ${variable}="abc" is invalid: ${variable} must be an integer number`,
      ),
    );
  });

  it('should give one reason for a value out of range', () => {
    expect(() => configFrom({ PORT: '70000' })).toThrow(
      new InvalidConfigError('Invalid configuration: PORT="70000" is invalid: PORT must not be greater than 65535'),
    );
  });

  it.each([
    'SSE_PING_INTERVAL_MS',
    'KEEP_ALIVE_TIMEOUT_MS',
    'SHUTDOWN_GRACE_MS',
    'RATE_LIMIT_WINDOW_MS',
    'LLM_TIMEOUT_MS',
    'CHAT_LOCK_LEASE_MS',
  ])('should refuse %s longer than a Node timer can wait', (variable) => {
    expect(() => configFrom({ [variable]: '3000000000' })).toThrow(`${variable}="3000000000"`);
    expect(() => configFrom({ [variable]: String(2 ** 31 - 1) })).not.toThrow();
  });

  it.each([
    'redis://default:s3cret@redis_cache:6379/14',
    'rediss://cache.internal',
    'redis://127.0.0.1:6379/2',
    'redis://cache:6379/',
    'redis://cache:6379?db=3',
    // A number Redis may not have (16 databases by default): Redis decides, at start-up.
    'redis://cache:6379/99',
  ])('should take REDIS_URL=%s, a Docker Compose host name too', (url) => {
    expect(configFrom({ REDIS_URL: url }).storage.redisUrl).toBe(url);
  });

  it.each([
    ['http://default:s3cret@cache:6379', 'REDIS_URL="http://default:***@cache:6379"'],
    ['redis://default:s3c#ret@cache:6379', 'REDIS_URL="redis://default:***@cache:6379"'],
    ['redis://', 'REDIS_URL="redis://"'],
  ])('should refuse REDIS_URL=%s without repeating its password', (url, named) => {
    expect(() => configFrom({ REDIS_URL: url })).toThrow(named);
  });

  it.each([
    ['redis://default:s3cret@cache:6379/abc', 'REDIS_URL="redis://default:***@cache:6379/abc" names database "abc"'],
    ['redis://cache:6379/-1', 'REDIS_URL="redis://cache:6379/-1" names database "-1"'],
    ['redis://cache:6379/2abc', 'REDIS_URL="redis://cache:6379/2abc" names database "2abc"'],
    ['rediss://:s3cret@cache?db=abc', 'REDIS_URL="rediss://:***@cache?db=abc" names database "abc"'],
    ['redis://cache?db=', 'REDIS_URL="redis://cache?db=" names database ""'],
  ])('should refuse REDIS_URL=%s, whose database is not a number, without its password', (url, named) => {
    expect(() => configFrom({ REDIS_URL: url })).toThrow(InvalidConfigError);
    expect(() => configFrom({ REDIS_URL: url })).toThrow(named);
    expect(() => configFrom({ REDIS_URL: url })).not.toThrow(/s3c/);
  });

  it.each([
    ['redis://default:s3cret@cache:6379/99', 'REDIS_URL="redis://default:***@cache:6379/99" names database 99,'],
    ['rediss://:s3cret@cache?db=20', 'REDIS_URL="rediss://:***@cache?db=20" names database 20,'],
  ])('should say that Redis has no database of REDIS_URL=%s without its password', (url, named) => {
    const error = missingRedisDatabase(url, new Error('ERR DB index is out of range'));
    expect(error).toBeInstanceOf(InvalidConfigError);
    expect(error.message).toBe(`Cannot start: ${named} which Redis does not have: ERR DB index is out of range`);
  });

  it.each([{ OPENAI_API_KEY: 'sk-test' }, { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' }])(
    'should pick the openai provider when %o is set',
    (env) => {
      expect(configFrom(env).llm.provider).toBe('openai');
    },
  );

  it('should let LLM_PROVIDER=offline win over a configured key', () => {
    expect(configFrom({ OPENAI_API_KEY: 'sk-test', LLM_PROVIDER: 'offline' }).llm.provider).toBe('offline');
  });

  it.each([
    { LLM_MODEL: 'llama3.2', LLM_MAX_OUTPUT_TOKENS: '8191' },
    { LLM_MODEL: 'llama3.2', LLM_MAX_OUTPUT_TOKENS: '9000', LLM_CONTEXT_TOKENS: '32768' },
    { LLM_MAX_OUTPUT_TOKENS: '32768' },
  ])('should take an output budget smaller than the default model’s window: %o', (env) => {
    expect(configFrom(env).llm.maxOutputTokens).toBe(Number(env.LLM_MAX_OUTPUT_TOKENS));
  });

  it('should treat empty variables as unset', () => {
    expect(configFrom({ PORT: '', OPENAI_API_KEY: '', LLM_MODEL: ' ' })).toMatchObject({
      http: { port: 3000 },
      llm: { provider: 'offline', defaultModel: DEFAULT_LLM_MODEL },
    });
  });

  it.each([
    [{ PORT: '3000x' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ LLM_MAX_RETRIES: '1.5' }, 'LLM_MAX_RETRIES'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ LLM_PROVIDER: 'openai' }, 'LLM_PROVIDER'],
    [{ LLM_CONTEXT_TOKENS: '1000', LLM_MAX_OUTPUT_TOKENS: '1000' }, 'LLM_CONTEXT_TOKENS'],
    [
      { LLM_MODEL: 'gpt-3.5-turbo', LLM_MAX_OUTPUT_TOKENS: '16385' },
      'LLM_MAX_OUTPUT_TOKENS=16385 must be smaller than the context window of LLM_MODEL="gpt-3.5-turbo" (16385 tokens)',
    ],
    [
      { LLM_MODEL: 'llama3.2', LLM_MAX_OUTPUT_TOKENS: '9000' },
      'LLM_MAX_OUTPUT_TOKENS=9000 must be smaller than the context window of LLM_MODEL="llama3.2" (8192 tokens, assumed',
    ],
    [{ DATABASE_URL: 'mysql://nope' }, 'DATABASE_URL'],
    [{ DATABASE_URL: 'sqlite:' }, 'DATABASE_URL'],
    [{ DATABASE_URL: './konko.db' }, 'DATABASE_URL'],
    [{ CHAT_LOCK_LEASE_MS: '100' }, 'CHAT_LOCK_LEASE_MS'],
    [{ KEEP_ALIVE_TIMEOUT_MS: '999' }, 'KEEP_ALIVE_TIMEOUT_MS'],
    [{ KEEP_ALIVE_TIMEOUT_MS: '65s' }, 'KEEP_ALIVE_TIMEOUT_MS'],
  ])('should reject %o naming %s in a single line', (env, variable) => {
    const attempt = () => configFrom(env);
    expect(attempt).toThrow(InvalidConfigError);
    expect(attempt).toThrow(variable);
    expect(attempt).toThrow(/^[^\n]*$/);
  });
});
