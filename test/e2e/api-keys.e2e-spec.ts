import { NestExpressApplication } from '@nestjs/platform-express';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import { ChatDto } from '../../src/chats/dto/chat.dto';
import { TurnDto } from '../../src/messages/dto/message.dto';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';

const ACME_KEY = 'acme-3f9c1e7a5b2d4c6e8f0a';
const GLOBEX_KEY = 'globex-9b8a7c6d5e4f3a2b1c0d';
const API_KEYS = `acme:${ACME_KEY},globex:${GLOBEX_KEY}`;
const MISSING_CHAT = '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e';

describe('API keys and tenants (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const as = (key: string) => ({ Authorization: `Bearer ${key}` });

  afterEach(() => app?.close());

  describe('with API_KEYS configured', () => {
    beforeEach(async () => {
      llm = new RecordingLlmProvider();
      app = await createTestApp({ llm, env: { API_KEYS } });
    });

    it.each([
      ['no Authorization header', {}, 'needs an API key'],
      ['an unknown key', { Authorization: 'Bearer not-a-key-of-anyone-at-all' }, 'not valid'],
      ['another scheme', { Authorization: `Basic ${Buffer.from(`acme:${ACME_KEY}`).toString('base64')}` }, 'needs'],
      ['a key in the wrong header', { 'X-Api-Key': ACME_KEY }, 'needs an API key'],
      ['a key with extra text', { Authorization: `Bearer ${ACME_KEY} extra` }, 'needs an API key'],
    ])('should answer 401 with a problem document for %s', async (_case, headers, detail) => {
      for (const [method, path] of [
        ['post', '/chats'],
        ['get', '/chats'],
        ['get', `/chats/${MISSING_CHAT}`],
        ['post', `/chats/${MISSING_CHAT}/messages`],
        ['get', `/chats/${MISSING_CHAT}/export`],
        ['post', '/chats/import'],
        ['get', '/export'],
        ['get', '/metrics'],
      ] as const) {
        const response = await http()[method](path).set(headers).expect(401);
        expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(response.headers['www-authenticate']).toBe('Bearer realm="konko"');
        expect(response.body).toMatchObject({ type: 'urn:konko:problem:unauthorized', status: 401 });
        expect(response.body.detail).toContain(detail);
      }
      expect(llm.calls).toHaveLength(0);
    });

    it('should refuse a request without a valid key before reading its body', async () => {
      await app.close();
      app = await createTestApp({ llm, env: { API_KEYS, BODY_LIMIT: '1kb', IMPORT_BODY_LIMIT: '2kb' } });
      // Over both limits: had the body been read, the answer would be 413.
      const body = { title: 'x'.repeat(4096) };
      for (const path of ['/chats', '/chats/import']) {
        for (const headers of [{}, { Authorization: 'Bearer not-a-key-of-anyone-at-all' }]) {
          const response = await http().post(path).set(headers).send(body).expect(401);
          expect(response.headers['www-authenticate']).toBe('Bearer realm="konko"');
          expect(response.body).toMatchObject({ type: 'urn:konko:problem:unauthorized', status: 401 });
        }
        await http().post(path).set(as(ACME_KEY)).send(body).expect(413);
      }
      const chat = (await http().post('/chats').set(as(ACME_KEY)).send({ title: 'Small' }).expect(201)).body;
      expect(chat).toMatchObject({ title: 'Small' });
      await http().get(`/chats/${chat.id}`).set(as(ACME_KEY)).expect(200);
      for (const path of ['/health/live', '/health/ready', '/', '/playground/playground.js', '/docs-json', '/docs/']) {
        await http().get(path).expect(200);
      }
    });

    it('should accept the scheme name in any case, as RFC 9110 says', async () => {
      await http().get('/chats').set('Authorization', `bearer ${ACME_KEY}`).expect(200);
    });

    it('should serve health and docs without a key, and metrics with any tenant key', async () => {
      await http().get('/health/live').expect(200);
      await http().get('/health/ready').expect(200);
      await http().get('/docs-json').expect(200);
      await http().get('/docs/').expect(200);
      await http().get('/metrics').set(as(GLOBEX_KEY)).expect(200);
    });

    it("should keep each tenant's chats invisible to the other on every route", async () => {
      const mine = (await http().post('/chats').set(as(ACME_KEY)).send({ title: 'Acme roadmap' }).expect(201))
        .body as ChatDto;
      const turn = (
        await http().post(`/chats/${mine.id}/messages`).set(as(ACME_KEY)).send({ content: 'Plan Q3' }).expect(201)
      ).body as TurnDto;
      const theirs = (await http().post('/chats').set(as(GLOBEX_KEY)).send({ title: 'Globex secrets' }).expect(201))
        .body as ChatDto;
      const llmCallsBefore = llm.calls.length;

      const acmeList = (await http().get('/chats').set(as(ACME_KEY)).expect(200)).body.data as ChatDto[];
      const globexList = (await http().get('/chats').set(as(GLOBEX_KEY)).expect(200)).body.data as ChatDto[];
      expect(acmeList.map((c) => c.id)).toEqual([mine.id]);
      expect(globexList.map((c) => c.id)).toEqual([theirs.id]);

      // Globex tries every route on Acme's chat: each answers exactly as for a chat that does not exist.
      const probes = [
        http().get(`/chats/${mine.id}`),
        http().patch(`/chats/${mine.id}`).send({ title: 'Pwned' }),
        http().delete(`/chats/${mine.id}`),
        http().get(`/chats/${mine.id}/messages`),
        http().post(`/chats/${mine.id}/messages`).send({ content: 'Show me' }),
        http().post(`/chats/${mine.id}/messages?stream=true`).send({ content: 'Stream it' }),
        http().post(`/chats/${mine.id}/messages`).set('Idempotency-Key', 'k-1').send({ content: 'Again' }),
        http().get(`/chats/${mine.id}/summary`),
        http().get(`/chats/${mine.id}/summary?abstract=true`),
        http().get(`/chats/${mine.id}/messages?branch=all`),
        http().patch(`/chats/${mine.id}`).send({ currentMessageId: turn.userMessage.id }),
        http().post(`/chats/${mine.id}/messages`).send({ content: 'Edit', parentId: turn.userMessage.id }),
        http().post(`/chats/${mine.id}/messages/${turn.userMessage.id}/regenerate`),
        http().post(`/chats/${mine.id}/messages/${turn.assistantMessage.id}/regenerate?stream=true`),
        http().post(`/chats/${mine.id}/stop`),
        http().get(`/chats/${mine.id}/stream`),
        http()
          .get(`/chats/${mine.id}/stream`)
          .set('Last-Event-ID', `${turn.userMessage.id}.${turn.assistantMessage.id}.0`),
        http().get(`/chats/${mine.id}/export`),
        http().get(`/chats/${mine.id}/export?format=markdown`),
      ];
      for (const probe of probes) {
        const response = await probe.set(as(GLOBEX_KEY)).expect(404);
        expect(response.body).toMatchObject({
          type: 'urn:konko:problem:chat-not-found',
          detail: `No chat has the id ${mine.id}.`,
        });
      }
      expect(llm.calls).toHaveLength(llmCallsBefore);
      // Search finds the caller's own messages only.
      const found = (tenantKey: string) =>
        http()
          .get('/search?q=plan%20q3')
          .set(as(tenantKey))
          .expect(200)
          .then((r) => r.body.data as unknown[]);
      expect(await found(GLOBEX_KEY)).toEqual([]);
      expect(await found(ACME_KEY)).toHaveLength(2);

      // Acme's chat is untouched, and Acme cannot reach Globex's either.
      expect((await http().get(`/chats/${mine.id}`).set(as(ACME_KEY)).expect(200)).body).toMatchObject({
        title: 'Acme roadmap',
        messageCount: 2,
        currentMessageId: turn.assistantMessage.id,
      });
      const messages = (await http().get(`/chats/${mine.id}/messages`).set(as(ACME_KEY)).expect(200)).body.data;
      expect(messages.map((m: { content: string }) => m.content)[0]).toBe('Plan Q3');
      await http().get(`/chats/${theirs.id}`).set(as(ACME_KEY)).expect(404);
      await http().delete(`/chats/${theirs.id}`).set(as(ACME_KEY)).expect(404);
      await http().get(`/chats/${theirs.id}`).set(as(GLOBEX_KEY)).expect(200);
    });

    it("should not let a cursor from one tenant's list reveal another's chats", async () => {
      for (let i = 0; i < 3; i++) await http().post('/chats').set(as(ACME_KEY)).expect(201);
      const globexChat = (await http().post('/chats').set(as(GLOBEX_KEY)).expect(201)).body as ChatDto;
      const page = (await http().get('/chats?limit=1').set(as(ACME_KEY)).expect(200)).body;
      const next = await http().get(`/chats?cursor=${page.nextCursor}`).set(as(GLOBEX_KEY)).expect(200);
      expect((next.body.data as ChatDto[]).every((c) => c.id === globexChat.id)).toBe(true);
    });
  });

  it('should read hashed keys from API_KEYS_FILE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'konko-keys-'));
    try {
      const file = join(dir, 'api-keys');
      const hash = createHash('sha256').update(ACME_KEY).digest('hex');
      writeFileSync(file, `# tenant:sha256 of the key\nacme:${hash}\n\n`);
      app = await createTestApp({ env: { API_KEYS_FILE: file } });
      await http().get('/chats').set(as(ACME_KEY)).expect(200);
      await http().get('/chats').set(as(hash)).expect(401);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should run open without API keys, every caller in one tenant', async () => {
    app = await createTestApp();
    const chat = (await http().post('/chats').expect(201)).body as ChatDto;
    await http().get(`/chats/${chat.id}`).set(as('anything-at-all-goes-here')).expect(200);
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);
  });

  describe('rate limits', () => {
    const REDIS_URL = 'redis://127.0.0.1:6379/14';

    beforeEach(async () => {
      const redis = new Redis(REDIS_URL);
      await redis.flushdb();
      await redis.quit();
    });

    it('should count each tenant apart, even from one address', async () => {
      app = await createTestApp({ env: { API_KEYS, RATE_LIMIT: '3', REDIS_URL } });
      for (let i = 0; i < 3; i++) await http().get('/chats').set(as(ACME_KEY)).expect(200);
      const limited = await http().get('/chats').set(as(ACME_KEY)).expect(429);
      expect(limited.headers['retry-after']).toMatch(/^\d+$/);
      await http().get('/chats').set(as(GLOBEX_KEY)).expect(200);
    });
  });
});
