import { NestExpressApplication } from '@nestjs/platform-express';
import { setTimeout as delay } from 'node:timers/promises';
import request from 'supertest';
import { RedisLink } from '../support/redis-link';
import { createTestApp } from '../support/test-app';

/** A database of the shared Redis of its own; each test goes to it through a link it cuts. */
const DB = 11;

/** Resolves once `check` holds, asking again every 50 ms (ioredis reconnects on its own schedule). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await delay(50);
}

describe('REDIS_URL while Redis is unreachable (e2e)', () => {
  let app: NestExpressApplication | undefined;
  let link: RedisLink;
  const http = () => request(app!.getHttpServer());
  const isReady = async () => (await http().get('/health/ready')).status === 200;
  afterEach(async () => {
    // Cut first: a client still connected to a hung Redis would wait for its QUIT to be answered.
    await link.close();
    await app?.close();
    app = undefined;
  });

  it('should turn unready, naming Redis, while Redis is down or hangs, and ready again once it answers', async () => {
    link = await RedisLink.open(DB);
    app = await createTestApp({ env: { REDIS_URL: link.url, RATE_LIMIT: '0' } });
    await until(isReady);
    expect((await http().get('/health/ready')).body.details).toMatchObject({
      storage: { status: 'up' },
      redis: { status: 'up' },
    });

    await link.cut();
    const down = await http().get('/health/ready').expect(503);
    expect(down.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(down.body).toMatchObject({
      type: 'urn:konko:problem:not-ready',
      detail: 'Not ready: redis failing.',
      checks: { redis: { status: 'down', message: expect.any(String) } },
    });

    await link.restore();
    await until(isReady);
    link.freeze();
    const hung = await http().get('/health/ready').expect(503);
    expect(hung.body.checks).toEqual({ redis: { status: 'down', message: 'no answer within 1000 ms' } });
  });
});
