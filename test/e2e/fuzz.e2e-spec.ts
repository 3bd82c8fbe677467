import { NestExpressApplication } from '@nestjs/platform-express';
import fc from 'fast-check';
import request from 'supertest';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';

const RUNS = 150;

/** Property-based input fuzzing of every route: never a 5xx, every error a problem document. */
describe('Input fuzzing (e2e)', () => {
  let app: NestExpressApplication;
  let chatId: string;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    app = await createTestApp({ llm: new RecordingLlmProvider(), env: { RATE_LIMIT: '0' } });
    chatId = (await http().post('/chats').expect(201)).body.id;
  });
  afterAll(() => app.close());

  const expectHandled = (response: request.Response, allowed: number[]) => {
    expect(response.status).toBeLessThan(500);
    expect(allowed).toContain(response.status);
    if (response.status >= 400) {
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.body).toMatchObject({
        status: response.status,
        type: expect.any(String),
        title: expect.any(String),
      });
    }
  };

  const bodyRoutes = () => [
    { method: 'post' as const, path: '/chats', ok: [201] },
    { method: 'patch' as const, path: `/chats/${chatId}`, ok: [200] },
    { method: 'post' as const, path: `/chats/${chatId}/messages`, ok: [201] },
  ];

  it('should answer any JSON value as a body with a success or a 4xx problem', async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.constantFrom(0, 1, 2), async (body, route) => {
        const { method, path, ok } = bodyRoutes()[route];
        const response = await http()[method](path).set('Content-Type', 'application/json').send(JSON.stringify(body));
        expectHandled(response, [...ok, 400, 413, 422]);
      }),
      { numRuns: RUNS },
    );
  });

  it('should answer objects with arbitrary known and unknown fields with a success or a 422 problem', async () => {
    const value = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.constant(null),
      fc.boolean(),
      fc.dictionary(fc.string(), fc.jsonValue()),
    );
    const body = fc.record(
      { title: value, systemPrompt: value, model: value, metadata: value, content: value, extra: value },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(body, fc.constantFrom(0, 1, 2), async (fields, route) => {
        const { method, path, ok } = bodyRoutes()[route];
        expectHandled(await http()[method](path).send(fields), [...ok, 422]);
      }),
      { numRuns: RUNS },
    );
  });

  it('should answer any string as a chat id with a problem, never a 5xx', async () => {
    const routes = [
      (id: string) => http().get(`/chats/${id}`),
      (id: string) => http().patch(`/chats/${id}`).send({ title: 'x' }),
      (id: string) => http().delete(`/chats/${id}`),
      (id: string) => http().get(`/chats/${id}/messages`),
      (id: string) => http().post(`/chats/${id}/messages`).send({ content: 'hi' }),
      (id: string) => http().get(`/chats/${id}/summary`),
    ];
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 80 }), fc.nat(routes.length - 1), async (id, route) => {
        expectHandled(await routes[route](encodeURIComponent(id)), [404]);
      }),
      { numRuns: RUNS },
    );
  });

  it('should answer arbitrary query parameters with a page or a 422 problem', async () => {
    const query = fc.dictionary(fc.constantFrom('limit', 'cursor', 'stream', 'abstract', 'other'), fc.string(), {
      maxKeys: 4,
    });
    const routes = ['/chats', `/chats/${chatId}/messages`, `/chats/${chatId}/summary`];
    await fc.assert(
      fc.asyncProperty(query, fc.nat(routes.length - 1), async (params, route) => {
        expectHandled(await http().get(routes[route]).query(params), [200, 422]);
      }),
      { numRuns: RUNS },
    );
  });

  it('should survive arbitrary content types, accept headers and request ids', async () => {
    const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,60}$/);
    await fc.assert(
      fc.asyncProperty(headerValue, headerValue, headerValue, async (contentType, accept, requestId) => {
        const response = await http()
          .post('/chats')
          .set('Content-Type', contentType)
          .set('Accept', accept)
          .set('X-Request-Id', requestId)
          .send('{"title":"fuzz"}');
        expectHandled(response, [201, 400, 415, 422]);
      }),
      { numRuns: RUNS },
    );
  });
});
