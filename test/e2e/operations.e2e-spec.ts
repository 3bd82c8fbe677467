import { NestExpressApplication } from '@nestjs/platform-express';
import Redis from 'ioredis';
import { once } from 'node:events';
import { IncomingMessage, ServerResponse } from 'node:http';
import { AddressInfo, connect, createServer } from 'node:net';
import request from 'supertest';
import { LlmUnavailableError } from '../../src/llm/llm-errors';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { deferred } from '../support/deferred';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { until } from '../support/until';

/** A Redis database of its own, emptied before use, for the rate-limit counters of these tests. */
const REDIS_URL = 'redis://127.0.0.1:6379/14';

describe('Operations (e2e)', () => {
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());
  afterEach(() => app?.close());

  describe('health', () => {
    it('should be live, and ready with the storage up and the LLM provider reported', async () => {
      app = await createTestApp({ llm: new RecordingLlmProvider() });
      expect((await http().get('/health/live').expect(200)).body.status).toBe('ok');
      const ready = (await http().get('/health/ready').expect(200)).body;
      expect(ready.details).toMatchObject({
        storage: { status: 'up' },
        shutdown: { status: 'up' },
        llm: { status: 'up', provider: 'recording' },
      });
    });

    // Unready once shutdown begins: graceful-shutdown.e2e, through SIGTERM.

    it('should turn unready when the storage fails', async () => {
      const repository = new InMemoryChatRepository();
      jest.spyOn(repository, 'findChat').mockRejectedValue(new Error('connection refused'));
      app = await createTestApp({ repository });
      const response = await http().get('/health/ready').expect(503);
      expect(response.body.checks).toEqual({ storage: { status: 'down', message: 'connection refused' } });
    });
  });

  describe('metrics', () => {
    it('should expose request, LLM, turn and lock metrics with route templates, never raw ids', async () => {
      app = await createTestApp({ llm: new RecordingLlmProvider() });
      const chatId = (await http().post('/chats').expect(201)).body.id;
      await http().post(`/chats/${chatId}/messages`).send({ content: 'Hello' }).expect(201);
      await http().get(`/chats/${chatId}`).expect(200);
      await http().get('/nowhere').expect(404);

      const text = (
        await http()
          .get('/metrics')
          .expect(200)
          .expect('Content-Type', /^text\/plain/)
      ).text;
      expect(text).toContain('http_request_duration_seconds_count{method="GET",route="/chats/:chatId",status="200"} 1');
      expect(text).toContain(
        'http_request_duration_seconds_count{method="POST",route="/chats/:chatId/messages",status="201"} 1',
      );
      expect(text).toContain('http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 1');
      expect(text).not.toContain(chatId);
      expect(text).toContain(
        'llm_request_duration_seconds_count{provider="recording",model="gpt-4.1-mini",purpose="turn",outcome="completed"} 1',
      );
      expect(text).toContain(
        'llm_tokens_total{provider="recording",model="gpt-4.1-mini",purpose="turn",kind="prompt"} 10',
      );
      expect(text).toContain(
        'llm_tokens_total{provider="recording",model="gpt-4.1-mini",purpose="turn",kind="completion"} 3',
      );
      expect(text).toContain('chat_turns_in_flight 0');
      expect(text).toContain('chat_lock_wait_seconds_count{outcome="acquired"} 1');
      expect(text).toContain('process_cpu_user_seconds_total');
    });

    it('should time a request whose client left before its answer, with status 499', async () => {
      const started = deferred();
      const reply = deferred();
      app = await createTestApp({
        llm: new RecordingLlmProvider(async (request) => {
          started.resolve();
          await reply.promise;
          return echoReply(request);
        }),
      });
      const chatId = (await http().post('/chats').expect(201)).body.id;
      const baseUrl = await listenOnLoopback(app);
      // Listeners of a response's end run in the order they were added, the service's first.
      const closed = deferred();
      app.getHttpServer().on('request', (request: IncomingMessage, response: ServerResponse) => {
        if (request.method === 'POST') response.once('close', closed.resolve);
      });
      const leaving = new AbortController();
      const turn = fetch(`${baseUrl}/chats/${chatId}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ content: 'Hello' }),
        signal: leaving.signal,
      }).catch(() => undefined);
      await started.promise;
      leaving.abort();
      await turn;
      await closed.promise;

      expect((await http().get('/metrics').expect(200)).text).toContain(
        'http_request_duration_seconds_count{method="POST",route="/chats/:chatId/messages",status="499"} 1',
      );
      reply.resolve();
    });

    it('should label LLM metrics with the default model, known families and `other`, whatever models chats name', async () => {
      app = await createTestApp({ llm: new RecordingLlmProvider() });
      const models = [undefined, 'gpt-4o-mini', ...Array.from({ length: 20 }, (_, i) => `client-model-${i}`)];
      for (const model of models) {
        const chatId = (await http().post('/chats').send({ model }).expect(201)).body.id;
        await http().post(`/chats/${chatId}/messages`).send({ content: 'Hello' }).expect(201);
      }

      const text = (await http().get('/metrics').expect(200)).text;
      const labelsOf = (metric: string) =>
        new Set([...text.matchAll(new RegExp(`^${metric}\\{[^}]*model="([^"]*)"`, 'gm'))].map(([, model]) => model));
      expect(labelsOf('llm_request_duration_seconds_count')).toEqual(new Set(['gpt-4.1-mini', 'gpt-4o', 'other']));
      expect(labelsOf('llm_tokens_total')).toEqual(new Set(['gpt-4.1-mini', 'gpt-4o', 'other']));
      expect(text).toContain(
        'llm_request_duration_seconds_count{provider="recording",model="gpt-4.1-mini",purpose="turn",outcome="completed"} 1',
      );
      expect(text).toContain(
        'llm_request_duration_seconds_count{provider="recording",model="other",purpose="turn",outcome="completed"} 20',
      );
      expect(text).not.toContain('client-model');
    });

    it('should meter the LLM call that titles a chat (AUTO_TITLE=llm) apart from the turn', async () => {
      const llm = new RecordingLlmProvider((req) =>
        req.messages[0].content.startsWith('Write a title')
          ? { content: 'Dinner party', model: 'fake-model', usage: { promptTokens: 40, completionTokens: 4 } }
          : echoReply(req),
      );
      app = await createTestApp({ llm, env: { AUTO_TITLE: 'llm' } });
      const chatId = (await http().post('/chats').expect(201)).body.id;
      await http().post(`/chats/${chatId}/messages`).send({ content: 'Plan a dinner party' }).expect(201);
      // The title is set once its LLM call has ended, and been metered.
      await until(
        async () => (await http().get(`/chats/${chatId}`).expect(200)).body.title === 'Dinner party',
        'the chat to be titled',
      );

      const text = (await http().get('/metrics').expect(200)).text;
      const series = '{provider="recording",model="gpt-4.1-mini"';
      expect(text).toContain(`llm_request_duration_seconds_count${series},purpose="turn",outcome="completed"} 1`);
      expect(text).toContain(`llm_request_duration_seconds_count${series},purpose="title",outcome="completed"} 1`);
      expect(text).toContain(`llm_tokens_total${series},purpose="turn",kind="prompt"} 10`);
      expect(text).toContain(`llm_tokens_total${series},purpose="turn",kind="completion"} 3`);
      expect(text).toContain(`llm_tokens_total${series},purpose="title",kind="prompt"} 40`);
      expect(text).toContain(`llm_tokens_total${series},purpose="title",kind="completion"} 4`);
    });

    it("should meter the LLM calls of summaries' abstracts, failed ones too, with the chat's model label", async () => {
      const llm = new RecordingLlmProvider();
      app = await createTestApp({ llm });
      const chatId = (await http().post('/chats').send({ model: 'client-model-1' }).expect(201)).body.id;
      await http().post(`/chats/${chatId}/messages`).send({ content: 'Hello' }).expect(201);
      llm.respond = () => {
        throw new LlmUnavailableError('The language model answered HTTP 429.', 3);
      };
      await http().get(`/chats/${chatId}/summary?abstract=true`).expect(503);
      llm.respond = () => ({
        content: 'A greeting.',
        model: 'fake-model',
        usage: { promptTokens: 120, completionTokens: 25 },
      });
      await http().get(`/chats/${chatId}/summary?abstract=true`).expect(200);

      const text = (await http().get('/metrics').expect(200)).text;
      const series = '{provider="recording",model="other",purpose="summary"';
      expect(text).toContain(`llm_request_duration_seconds_count${series},outcome="llm-unavailable"} 1`);
      expect(text).toContain(`llm_request_duration_seconds_count${series},outcome="completed"} 1`);
      expect(text).toContain(`llm_tokens_total${series},kind="prompt"} 120`);
      expect(text).toContain(`llm_tokens_total${series},kind="completion"} 25`);
      expect(text).toContain('llm_request_duration_seconds_count{provider="recording",model="other",purpose="turn"');
      expect(text).not.toContain('client-model');
    });
  });

  describe('HTTP hardening', () => {
    it('should send helmet headers', async () => {
      app = await createTestApp();
      const response = await http().get('/chats').expect(200);
      expect(response.headers['x-content-type-options']).toBe('nosniff');
      expect(response.headers['x-powered-by']).toBeUndefined();
      expect(response.headers['content-security-policy']).toContain("script-src 'self'");
      // The service is also served over plain HTTP, where upgrading would break Swagger UI.
      expect(response.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    });

    it('should allow only the configured CORS origins', async () => {
      app = await createTestApp({ env: { CORS_ORIGINS: 'https://app.example.com' } });
      const allowed = await http()
        .options('/chats')
        .set('Origin', 'https://app.example.com')
        .set('Access-Control-Request-Method', 'POST');
      expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com');
      const denied = await http().get('/chats').set('Origin', 'https://evil.example.com');
      expect(denied.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('should let the configured origins read the headers the API documents', async () => {
      app = await createTestApp({ env: { CORS_ORIGINS: 'https://app.example.com' } });
      const response = await http().get('/chats').set('Origin', 'https://app.example.com').expect(200);
      expect(response.headers['access-control-expose-headers'].split(',').sort()).toEqual(
        [
          'Location',
          'Retry-After',
          'Idempotent-Replayed',
          'X-Request-Id',
          'X-RateLimit-Limit',
          'X-RateLimit-Remaining',
          'X-RateLimit-Reset',
          'WWW-Authenticate',
        ].sort(),
      );
    });

    it('should send no CORS headers when no origins are configured', async () => {
      app = await createTestApp();
      const response = await http().get('/chats').set('Origin', 'https://app.example.com');
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
    });

    it('should apply BODY_LIMIT', async () => {
      app = await createTestApp({ env: { BODY_LIMIT: '1kb' } });
      await http()
        .post('/chats')
        .send({ title: 'x'.repeat(100) })
        .expect(201);
      const response = await http()
        .post('/chats')
        .send({ title: 'x'.repeat(200), metadata: { k: 'v'.repeat(500), l: 'w'.repeat(500) } });
      expect(response.status).toBe(413);
    });
  });

  describe('keep-alive connections', () => {
    /** One request on a raw connection: the response's head, and the socket, still open. */
    async function requestOnNewConnection(base: string) {
      const { hostname, port } = new URL(base);
      const socket = connect(Number(port), hostname);
      await once(socket, 'connect');
      socket.setEncoding('utf8');
      socket.write(`GET /health/live HTTP/1.1\r\nHost: ${hostname}\r\nConnection: keep-alive\r\n\r\n`);
      let head = '';
      while (!head.includes('\r\n\r\n')) head += String((await once(socket, 'data'))[0]);
      return { head: head.toLowerCase(), socket };
    }

    it('should announce Keep-Alive: timeout=65 by default, longer than a balancer keeps its own idle connections', async () => {
      app = await createTestApp();
      const { head, socket } = await requestOnNewConnection(await listenOnLoopback(app));
      socket.destroy();
      expect(head).toContain('keep-alive: timeout=65\r\n');
    });

    it('should close an idle connection after KEEP_ALIVE_TIMEOUT_MS', async () => {
      app = await createTestApp({ env: { KEEP_ALIVE_TIMEOUT_MS: '1000' } });
      const { head, socket } = await requestOnNewConnection(await listenOnLoopback(app));
      // The service, not the client, ends the connection once it has been idle that long.
      const ended = once(socket, 'end');
      expect(head).toContain('keep-alive: timeout=1\r\n');
      await ended;
    });
  });

  describe('rate limits', () => {
    it('should answer 429 with Retry-After past RATE_LIMIT, but never limit health or metrics', async () => {
      app = await createTestApp({ env: { RATE_LIMIT: '3', RATE_LIMIT_WINDOW_MS: '60000' } });
      const counted = [];
      for (let i = 0; i < 3; i++) counted.push((await http().get('/chats').expect(200)).headers);
      expect(counted.map((headers) => [headers['x-ratelimit-limit'], headers['x-ratelimit-remaining']])).toEqual([
        ['3', '2'],
        ['3', '1'],
        ['3', '0'],
      ]);
      for (const headers of counted) {
        expect(Number(headers['x-ratelimit-reset'])).toBeGreaterThan(0);
        expect(Number(headers['x-ratelimit-reset'])).toBeLessThanOrEqual(60);
      }
      const limited = await http().get('/chats').expect(429);
      expect(limited.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect(limited.body).toMatchObject({ status: 429, title: 'Too Many Requests' });
      for (let i = 0; i < 5; i++) {
        const health = await http().get('/health/ready').expect(200);
        expect(health.headers['x-ratelimit-limit']).toBeUndefined();
      }
      await http().get('/metrics').expect(200);
    });

    it('should refuse a client over the limit before reading its body, and say where it stands', async () => {
      app = await createTestApp({ env: { RATE_LIMIT: '1', RATE_LIMIT_WINDOW_MS: '60000' } });
      await http().get('/chats').expect(200);
      for (const path of ['/chats/import', '/chats']) {
        const limited = await http().post(path).set('Content-Type', 'application/json').send('{not json').expect(429);
        expect(limited.body).toMatchObject({ status: 429, title: 'Too Many Requests' });
        expect(limited.headers).toMatchObject({ 'x-ratelimit-limit': '1', 'x-ratelimit-remaining': '0' });
        expect(Number(limited.headers['x-ratelimit-reset'])).toBeGreaterThan(0);
        expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
      }
    });

    it('should start a new window once X-RateLimit-Reset has passed (counters in memory)', async () => {
      app = await createTestApp({ env: { RATE_LIMIT: '2', RATE_LIMIT_WINDOW_MS: '60000' } });
      const start = Date.now();
      const clock = jest.spyOn(Date, 'now').mockReturnValue(start);
      const standing = async (expected: number) => {
        const { headers } = await http().get('/chats').expect(expected);
        return [headers['x-ratelimit-remaining'], headers['x-ratelimit-reset'], headers['retry-after']];
      };
      expect(await standing(200)).toEqual(['1', '60', undefined]);
      clock.mockReturnValue(start + 30_000);
      expect(await standing(200)).toEqual(['0', '30', undefined]);
      expect(await standing(429)).toEqual(['0', '30', '30']);
      clock.mockReturnValue(start + 60_000);
      expect(await standing(200)).toEqual(['1', '60', undefined]);
    });

    it('should count each client behind a trusted proxy apart (TRUST_PROXY), and ignore the header otherwise', async () => {
      const env = { RATE_LIMIT: '2', RATE_LIMIT_WINDOW_MS: '60000' };
      const from = (address: string) => http().get('/chats').set('X-Forwarded-For', address);
      app = await createTestApp({ env: { ...env, TRUST_PROXY: 'loopback' } });
      await from('203.0.113.1').expect(200);
      await from('203.0.113.1').expect(200);
      await from('203.0.113.1').expect(429);
      await from('203.0.113.2').expect(200);
      await app.close();

      // Untrusted, the header is the client's own claim: every request counts for the peer.
      app = await createTestApp({ env });
      await from('203.0.113.1').expect(200);
      await from('203.0.113.2').expect(200);
      await from('203.0.113.3').expect(429);
    });

    it('should count all routes of a client against one limit', async () => {
      app = await createTestApp({ env: { RATE_LIMIT: '3', RATE_LIMIT_WINDOW_MS: '60000' } });
      await http().get('/chats').expect(200);
      await http().post('/chats').expect(201);
      await http().get('/search').query({ q: 'anything' }).expect(200);
      await http().get('/chats').expect(429);
      await http().post('/chats').expect(429);
    });

    it('should count an IPv6 client by its /64, and an IPv4 address mapped into IPv6 as itself', async () => {
      const env = { RATE_LIMIT: '2', RATE_LIMIT_WINDOW_MS: '60000', TRUST_PROXY: 'loopback' };
      const from = (address: string) => http().get('/chats').set('X-Forwarded-For', address);
      app = await createTestApp({ env });
      await from('2001:db8:1:2::1').expect(200);
      await from('2001:db8:1:2::2').expect(200);
      await from('2001:db8:1:2:ffff::3').expect(429);
      await from('2001:db8:1:3::1').expect(200);
      await from('::ffff:198.51.100.7').expect(200);
      await from('198.51.100.7').expect(200);
      await from('198.51.100.7').expect(429);
    });

    it('should not limit with RATE_LIMIT=0, nor send the limit headers', async () => {
      app = await createTestApp({ env: { RATE_LIMIT: '0' } });
      for (let i = 0; i < 20; i++) {
        const response = await http().get('/chats').expect(200);
        expect(response.headers['x-ratelimit-limit']).toBeUndefined();
      }
    });

    it('should let requests through, uncounted, while the Redis of the counters is down', async () => {
      // A loopback port nothing listens on: every connection to it is refused at once.
      const server = createServer().listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      app = await createTestApp({ env: { RATE_LIMIT: '1', REDIS_URL: `redis://127.0.0.1:${port}/0` } });
      for (let i = 0; i < 3; i++) await http().get('/chats').expect(200);
      await http().post('/chats').send({ title: 'Still here' }).expect(201);
    });

    it('should share the counters between instances through Redis', async () => {
      const redis = new Redis(REDIS_URL);
      await redis.flushdb();
      await redis.quit();
      const env = { RATE_LIMIT: '3', RATE_LIMIT_WINDOW_MS: '60000', REDIS_URL };
      const first = await createTestApp({ env });
      app = await createTestApp({ env });
      try {
        await request(first.getHttpServer()).get('/chats').expect(200);
        await request(first.getHttpServer()).get('/chats').expect(200);
        await http().get('/chats').expect(200);
        await http().get('/chats').expect(429);
        await request(first.getHttpServer()).get('/chats').expect(429);
      } finally {
        await first.close();
      }
    });
  });
});
