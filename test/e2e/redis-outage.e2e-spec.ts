import { NestExpressApplication } from '@nestjs/platform-express';
import { once } from 'node:events';
import request from 'supertest';
import type { LlmStreamPart } from '../../src/llm/llm-provider';
import type { MessageDto } from '../../src/messages/dto/message.dto';
import { EventStreamClient } from '../support/event-stream-client';
import { FakeOpenAiServer } from '../support/fake-openai-server';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { RedisLink } from '../support/redis-link';
import { ServiceProcess, startService } from '../support/service-process';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { createSqliteTestDatabase, TestDatabase } from '../support/test-databases';
import { until } from '../support/until';

// Service processes, and a Redis that goes away and comes back on ioredis's reconnection delays.
jest.setTimeout(60_000);

/** A database of the shared Redis of its own; each test goes to it through a link it cuts. */
const DB = 11;

/**
 * How long to ask again for what ioredis brings about on its own schedule: it reconnects at most
 * 2 s apart, so 400 attempts 50 ms apart (20 s and more) are plenty, and fail well within the timeout.
 */
const RECONNECTS = { attempts: 400, pauseMs: 50 };

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
    await until(isReady, 'the service to be ready', RECONNECTS);
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
    await until(isReady, 'the service to be ready', RECONNECTS);
    link.freeze();
    const hung = await http().get('/health/ready').expect(503);
    expect(hung.body.checks).toEqual({ redis: { status: 'down', message: 'no answer within 1000 ms' } });
  });

  it('should turn unready while it hears no stop requests, though Redis answers', async () => {
    link = await RedisLink.open(DB);
    app = await createTestApp({ env: { REDIS_URL: link.url, RATE_LIMIT: '0' } });
    await until(isReady, 'the service to be ready', RECONNECTS);
    link.cutSubscribers();
    await until(async () => !(await isReady()), 'the service to turn unready', RECONNECTS);
    const down = await http().get('/health/ready').expect(503);
    expect(down.body.checks).toEqual({
      redis: { status: 'down', message: expect.stringMatching(/^not subscribed to stop requests \(.+\)$/) },
    });
  });

  it('should answer a stop or a resume that needs Redis with 503 at once, and run, resume and stop its own turns', async () => {
    link = await RedisLink.open(DB, { up: false });
    const llm = new RecordingLlmProvider();
    app = await createTestApp({ llm, env: { REDIS_URL: link.url, RATE_LIMIT: '0' } });
    const baseUrl = await listenOnLoopback(app);
    const chatId = (await http().post('/chats').expect(201)).body.id as string;

    // No turn of the chat runs here: whether one runs on another instance, only Redis knows.
    for (const asked of [http().post(`/chats/${chatId}/stop`), http().get(`/chats/${chatId}/stream`)]) {
      const refused = await asked.expect(503);
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(refused.body).toMatchObject({ type: 'urn:konko:problem:redis-unavailable', status: 503 });
    }

    // A turn of this instance needs no other: it runs, resumes and stops here.
    llm.respond = (req) =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Once upon ' };
        await new Promise((_resolve, reject) =>
          req.signal!.addEventListener('abort', () => reject(req.signal!.reason)),
        );
      })();
    const turn = await EventStreamClient.post(`${baseUrl}/chats/${chatId}/messages`, { content: 'A story' });
    await turn.waitForEvents(2);
    const resumed = await EventStreamClient.get(`${baseUrl}/chats/${chatId}/stream`);
    expect(resumed.response.status).toBe(200);
    await http().post(`/chats/${chatId}/stop`).expect(202);
    const [told, resumedTold] = [(await turn.all()).at(-1), (await resumed.all()).at(-1)];
    const [userMessage, reply] = (await http().get(`/chats/${chatId}/messages`).expect(200)).body.data as MessageDto[];
    expect(userMessage.content).toBe('A story');
    expect(reply).toMatchObject({ status: 'incomplete', content: 'Once upon ' });
    expect(told).toEqual({ event: 'assistant_message', data: reply, id: expect.any(String) });
    expect(resumedTold).toEqual(told);
  });

  it('should answer a stop with 503 redis-unavailable when Redis hangs', async () => {
    link = await RedisLink.open(DB);
    app = await createTestApp({ env: { REDIS_URL: link.url, RATE_LIMIT: '0' } });
    await until(isReady, 'the service to be ready', RECONNECTS);
    const chatId = (await http().post('/chats').expect(201)).body.id as string;
    link.freeze();
    const refused = await http().post(`/chats/${chatId}/stop`).expect(503);
    expect(refused.body).toMatchObject({ type: 'urn:konko:problem:redis-unavailable' });
  });
});

describe('Two instances whose Redis is down as they start (e2e, service processes)', () => {
  let llm: FakeOpenAiServer;
  let database: TestDatabase;
  let link: RedisLink;
  let services: ServiceProcess[] = [];
  afterEach(async () => {
    await Promise.all(services.map((service) => service.stop()));
    services = [];
    await llm.close();
    await database.drop();
    await link.close();
  });

  /** Resolves once the service has logged `pattern` `times` times. */
  function logged(service: ServiceProcess, pattern: string, times: number): Promise<void> {
    const streams = [service.child.stdout!, service.child.stderr!];
    // After the listener of startService, which adds each chunk to the output.
    return new Promise((resolve) => {
      const check = () => {
        if (service.output().split(pattern).length - 1 < times) return;
        for (const stream of streams) stream.off('data', check);
        resolve();
      };
      for (const stream of streams) stream.on('data', check);
      check();
    });
  }

  /** Two instances on one SQLite database, reaching Redis through `link`. */
  async function startTwo(): Promise<ServiceProcess[]> {
    const env = {
      DATABASE_URL: database.url,
      OPENAI_BASE_URL: llm.baseUrl,
      LLM_MAX_RETRIES: '0',
      RATE_LIMIT: '0',
      AUTO_TITLE: 'off',
      REDIS_URL: link.url,
    };
    return (services = [await startService(env), await startService(env)]);
  }
  const ready = async (service: ServiceProcess) => (await fetch(`${service.baseUrl}/health/ready`)).status === 200;

  /** Asks B to stop the chat's turn, which runs on A; when B finds none, the failure shows both logs. */
  async function stopOnB([a, b]: ServiceProcess[], chatId: string): Promise<void> {
    const { status } = await fetch(`${b.baseUrl}/chats/${chatId}/stop`, { method: 'POST' });
    const logs = status === 202 ? {} : { a: a.output(), b: b.output() };
    expect({ status, ...logs }).toEqual({ status: 202 });
  }

  it('should hear a stop from the other instance once Redis is back', async () => {
    llm = await new FakeOpenAiServer().start();
    database = await createSqliteTestDatabase();
    link = await RedisLink.open(DB, { up: false });
    const [a, b] = await startTwo();
    // ioredis gives up a command it holds after 20 reconnection attempts (maxRetriesPerRequest):
    // Redis comes back only after A's subscription to stops has met that.
    await logged(a, 'Redis subscriber: connect ECONNREFUSED', 21);
    await link.restore();
    await until(async () => (await ready(a)) && (await ready(b)), 'both instances to be ready', RECONNECTS);

    const chatId = ((await (await fetch(`${a.baseUrl}/chats`, { method: 'POST' })).json()) as { id: string }).id;
    llm.enqueue({ kind: 'reply', pieces: ['Once ', 'upon ', 'a ', 'time'], holdAfter: 2 });
    const held = once(llm, 'held');
    const turn = await EventStreamClient.post(`${a.baseUrl}/chats/${chatId}/messages`, { content: 'A story' });
    await held;
    const abandoned = once(llm, 'abandoned');
    await stopOnB([a, b], chatId);
    await abandoned;
    const events = await turn.all();
    expect(events.at(-1)).toMatchObject({
      event: 'assistant_message',
      data: { status: 'incomplete', content: 'Once upon ' },
    });
  });

  it('should let the other instance resume and stop a turn that began while Redis was down, once it is back', async () => {
    llm = await new FakeOpenAiServer().start();
    database = await createSqliteTestDatabase();
    link = await RedisLink.open(DB);
    const [a, b] = await startTwo();
    await until(async () => (await ready(a)) && (await ready(b)), 'both instances to be ready', RECONNECTS);
    const chatId = ((await (await fetch(`${a.baseUrl}/chats`, { method: 'POST' })).json()) as { id: string }).id;

    await link.cut();
    llm.enqueue({ kind: 'reply', pieces: ['Once ', 'upon ', 'a ', 'time'], holdAfter: 2 });
    const held = once(llm, 'held');
    const turn = await EventStreamClient.post(`${a.baseUrl}/chats/${chatId}/messages`, { content: 'A story' });
    await held;
    const seen = (await turn.waitForEvents(3)).slice(0, 3);
    turn.disconnect();
    // ioredis fails the commands it holds after 20 reconnection attempts: the turn's running mark
    // never reached Redis, nor its events.
    await logged(a, 'Could not mark a running turn', 1);
    await link.restore();
    await until(async () => (await ready(a)) && (await ready(b)), 'both instances to be ready', RECONNECTS);

    const resumed = await EventStreamClient.get(`${b.baseUrl}/chats/${chatId}/stream`, {
      'Last-Event-ID': seen[0].id!,
    });
    expect(resumed.response.status).toBe(200);
    expect(await resumed.waitForEvents(2)).toEqual(seen.slice(1));
    const abandoned = once(llm, 'abandoned');
    await stopOnB([a, b], chatId);
    await abandoned;
    const events = await resumed.all();
    const [, reply] = ((await (await fetch(`${b.baseUrl}/chats/${chatId}/messages`)).json()) as { data: MessageDto[] })
      .data;
    expect(reply).toMatchObject({ status: 'incomplete', content: 'Once upon ' });
    expect(events).toEqual([...seen.slice(1), { event: 'assistant_message', data: reply, id: expect.any(String) }]);
  });
});
