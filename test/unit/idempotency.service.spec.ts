import { parseLimitsConfig } from '../../src/config/limits.config';
import { parseStorageConfig } from '../../src/config/storage.config';
import { IdempotencyKeyInUseError, IdempotencyKeyReusedError } from '../../src/idempotency/idempotency-errors';
import { IdempotencyService, NO_KEY } from '../../src/idempotency/idempotency.service';
import { IdempotencyScope } from '../../src/idempotency/idempotency.store';
import { InMemoryIdempotencyStore } from '../../src/storage/in-memory/in-memory-idempotency.store';

const LEASE_MS = 1_000;
const TTL_MS = 3_600_000;
const scope = (key = 'key-1'): IdempotencyScope => ({ tenantId: 't', route: 'POST /x', chatId: 'c', key });

describe(IdempotencyService.name, () => {
  let store: InMemoryIdempotencyStore;
  let service: IdempotencyService;
  let now: number;
  beforeEach(() => {
    now = Date.now();
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    store = new InMemoryIdempotencyStore();
    service = new IdempotencyService(
      store,
      parseLimitsConfig({ IDEMPOTENCY_TTL: '1h' }),
      parseStorageConfig({ CHAT_LOCK_LEASE_MS: String(LEASE_MS) }),
    );
  });
  afterEach(() => jest.restoreAllMocks());

  const run = async (key: IdempotencyScope | undefined, body: unknown) => {
    const start = await service.start(key, body);
    if (start.kind !== 'run') throw new Error(`expected to run, got ${start.kind}`);
    return start.held;
  };

  it('should run a request without a key and remember nothing of it', async () => {
    expect(await service.start(undefined, { a: 1 })).toEqual({ kind: 'run', held: NO_KEY });
  });

  it('should replay what a completed request recorded, whatever order its body has', async () => {
    const held = await run(scope(), { content: 'hi', n: 1 });
    await held.complete({ answer: 42 });
    await held.release();

    expect(await service.start(scope(), { n: 1, content: 'hi' })).toEqual({ kind: 'replay', outcome: '{"answer":42}' });
  });

  it('should refuse the key with another body, and while its first request holds it', async () => {
    const held = await run(scope(), { content: 'hi' });

    await expect(service.start(scope(), { content: 'hi' })).rejects.toBeInstanceOf(IdempotencyKeyInUseError);
    await expect(service.start(scope(), { content: 'other' })).rejects.toBeInstanceOf(IdempotencyKeyReusedError);
    await held.release();
  });

  it('should let a repeat resume from the progress a stopped request recorded', async () => {
    const held = await run(scope(), { content: 'hi' });
    await held.recordProgress({ userMessage: 'stored' });
    await held.release();

    const repeat = await run(scope(), { content: 'hi' });
    expect(repeat.progress).toBe('{"userMessage":"stored"}');
    expect((await run(scope('key-2'), { content: 'hi' })).progress).toBeNull();
  });

  it('should pass a key whose holder stopped renewing (a crashed instance) to a repeat once its lease lapses', async () => {
    const crashed = await run(scope(), { content: 'hi' });
    await crashed.recordProgress('half done');
    now += LEASE_MS + 1;

    const repeat = await run(scope(), { content: 'hi' });

    expect(repeat.progress).toBe('"half done"');
    await repeat.release();
    await crashed.release();
  });

  it('should keep a running key while its holder renews it past the lease', async () => {
    jest.useFakeTimers({ doNotFake: ['Date'] });
    try {
      const held = await run(scope(), { content: 'hi' });
      for (let i = 0; i < 6; i++) {
        now += LEASE_MS / 3;
        await jest.advanceTimersByTimeAsync(LEASE_MS / 3);
      }
      await expect(service.start(scope(), { content: 'hi' })).rejects.toBeInstanceOf(IdempotencyKeyInUseError);
      await held.release();
    } finally {
      jest.useRealTimers();
    }
  });

  it('should forget a key after its time to live', async () => {
    const held = await run(scope(), { content: 'hi' });
    await held.complete('done');
    now += TTL_MS + 1;

    expect((await service.start(scope(), { content: 'other body now' })).kind).toBe('run');
  });
});
