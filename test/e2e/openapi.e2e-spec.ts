import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';

type Operation = {
  requestBody?: { required?: boolean; content: Record<string, { schema: object }> };
  responses: Record<
    string,
    {
      description?: string;
      headers?: Record<string, { schema: { type: string } }>;
      content?: Record<string, { schema?: Schema; example?: unknown; examples?: Record<string, { value: unknown }> }>;
    }
  >;
};

/** The parts of a JSON schema these tests read. */
type Schema = {
  $ref?: string;
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  oneOf?: Schema[];
  anyOf?: Schema[];
  allOf?: Schema[];
  minLength?: number;
  pattern?: string;
};

describe('OpenAPI document (e2e)', () => {
  let app: NestExpressApplication;
  let document: {
    openapi: string;
    paths: Record<string, Record<string, Operation>>;
    components: { schemas: Record<string, unknown> };
  };

  beforeAll(async () => {
    app = await createTestApp();
    document = (await request(app.getHttpServer()).get('/docs-json').expect(200)).body;
  });
  afterAll(() => app.close());

  it('should serve Swagger UI at /docs', async () => {
    const response = await request(app.getHttpServer()).get('/docs').expect(200);
    expect(response.text).toContain('swagger-ui');
  });

  it('should describe every route of the contract', () => {
    expect(document.openapi).toMatch(/^3\./);
    const routes = Object.entries(document.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        'POST /chats',
        'GET /chats',
        'GET /chats/{chatId}',
        'PATCH /chats/{chatId}',
        'DELETE /chats/{chatId}',
        'POST /chats/{chatId}/messages',
        'POST /chats/{chatId}/messages/{messageId}/regenerate',
        'GET /chats/{chatId}/messages',
        'GET /chats/{chatId}/summary',
        'POST /chats/{chatId}/stop',
        'GET /chats/{chatId}/stream',
        'GET /search',
        'GET /chats/{chatId}/export',
        'POST /chats/import',
        'GET /export',
        'GET /health/live',
        'GET /health/ready',
        'GET /metrics',
      ].sort(),
    );
  });

  it('should give every body and response a schema, and every problem an example of its own path', () => {
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        for (const media of Object.values(operation.requestBody?.content ?? {})) {
          expect({ where, schema: media.schema }).toEqual({ where, schema: expect.any(Object) });
        }
        for (const [status, response] of Object.entries(operation.responses)) {
          // No body: a deletion's 204, a stop's 202 and 204, a resume's 204.
          if (status === '204' || status === '202') continue;
          const content = response.content ?? {};
          // One media type, but where the request picks the form (an export as JSON or Markdown).
          const media = where === 'GET /chats/{chatId}/export' && status === '200' ? 2 : 1;
          expect({ where, status, media: Object.keys(content).length }).toEqual({ where, status, media });
          for (const [mediaType, media] of Object.entries(content)) {
            expect({ where, status, schema: media.schema }).toEqual({ where, status, schema: expect.any(Object) });
            if (Number(status) >= 400) {
              expect({ where, status, mediaType }).toEqual({ where, status, mediaType: 'application/problem+json' });
              // One example, or several named ones where the status has more than one problem.
              const examples = media.examples ? Object.values(media.examples).map((e) => e.value) : [media.example];
              // Each names the operation's own path, its ids filled in, as the service does.
              const instance = new RegExp(`^${path.replace(/\{\w+\}/g, '[0-9a-f-]{36}')}$`);
              for (const example of examples) {
                expect({ where, status, example }).toEqual({
                  where,
                  status,
                  example: expect.objectContaining({ instance: expect.stringMatching(instance) }),
                });
              }
            }
          }
        }
      }
    }
  });

  it('should document the errors each route can answer', () => {
    const statuses = (path: string, method: string) => Object.keys(document.paths[path][method].responses).sort();
    expect(statuses('/chats/{chatId}/messages', 'post')).toEqual(
      ['200', '201', '400', '401', '404', '409', '413', '415', '422', '429', '500', '502', '503', '504'].sort(),
    );
    expect(statuses('/chats', 'post')).toEqual(
      ['201', '400', '401', '409', '413', '415', '422', '429', '500', '503'].sort(),
    );
    const idempotencyHeader = (path: string) =>
      (document.paths[path].post as Operation & { parameters: { name: string; in: string }[] }).parameters.find(
        (p) => p.name === 'Idempotency-Key',
      );
    expect(idempotencyHeader('/chats')).toMatchObject({ in: 'header', required: false });
    expect(idempotencyHeader('/chats/{chatId}/messages')).toMatchObject({ in: 'header', required: false });
    expect(statuses('/chats/{chatId}', 'get')).toEqual(['200', '401', '404', '422', '429', '500', '503']);
    expect(statuses('/chats/{chatId}/summary', 'get')).toEqual([
      '200',
      '401',
      '404',
      '422',
      '429',
      '500',
      '502',
      '503',
      '504',
    ]);
    expect(statuses('/health/ready', 'get')).toEqual(['200', '500', '503']);
    expect(document.components.schemas).toHaveProperty('ValidationProblemDto');
    expect(document.components.schemas).toHaveProperty('ReplyFailedProblemDto');
  });

  it("should declare the rate limit's 429 with Retry-After on every operation but health checks and metrics", () => {
    type Response = {
      description: string;
      headers?: Record<string, { schema: { type: string } }>;
      content?: Record<string, { example?: { type: string; title: string; status: number } }>;
    };
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        const tooMany = operation.responses['429'] as Response | undefined;
        // The routes marked SkipRateLimit(); the marker itself leaves the document.
        expect({ where, marker: (operation as Record<string, unknown>)['x-konko-unthrottled'] }).toEqual({ where });
        if (path.startsWith('/health/') || path === '/metrics') {
          expect({ where, tooMany }).toEqual({ where });
          continue;
        }
        expect({ where, retryAfter: tooMany?.headers?.['Retry-After']?.schema.type }).toEqual({
          where,
          retryAfter: 'integer',
        });
        // The turns' own 429 (chat-busy) names the rate limit beside it.
        expect({ where, description: tooMany?.description }).toEqual({
          where,
          description: expect.stringContaining('RATE_LIMIT'),
        });
      }
    }
    const plain = (document.paths['/chats'].get.responses['429'] as Response).content?.['application/problem+json'];
    expect(plain?.example).toMatchObject({
      type: 'about:blank',
      title: 'Too Many Requests',
      status: 429,
      detail: 'More than 600 requests in 60 s; retry after the time in Retry-After.',
    });
  });

  it('should declare every rate-limit header a 429 over RATE_LIMIT carries, on each operation', async () => {
    const limited = await createTestApp({ env: { RATE_LIMIT: '1' } });
    try {
      const chatId = (await request(limited.getHttpServer()).post('/chats').expect(201)).body.id as string;
      for (const [path, operations] of Object.entries(document.paths)) {
        for (const [method, operation] of Object.entries(operations)) {
          if (!operation.responses['429']) continue;
          const where = `${method.toUpperCase()} ${path}`;
          const url = path.replace('{chatId}', chatId).replace('{messageId}', chatId);
          const response = await request(limited.getHttpServer())
            [method as 'get' | 'post' | 'patch' | 'delete'](url)
            .expect(429);
          const declared = Object.keys(operation.responses['429'].headers ?? {}).map((name) => name.toLowerCase());
          const undeclared = Object.keys(response.headers).filter(
            (name) => /^(retry-after|x-ratelimit-)/.test(name) && !declared.includes(name),
          );
          expect({ where, undeclared }).toEqual({ where, undeclared: [] });
        }
      }
    } finally {
      await limited.close();
    }
  });

  it("should declare the database's 503 with Retry-After on every operation but health checks and metrics", () => {
    type Media = { example?: { type: string }; examples?: Record<string, { value: { type: string } }> };
    type Response = {
      description: string;
      headers?: Record<string, { description: string }>;
      content: Record<string, Media>;
    };
    const storageUnavailable = {
      type: 'urn:konko:problem:storage-unavailable',
      title: 'The database is unreachable',
      status: 503,
      detail: 'The service cannot reach its database right now. Retry shortly.',
    };
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        const unavailable = operation.responses['503'] as Response | undefined;
        if (path === '/health/live' || path === '/metrics') {
          expect({ where, unavailable }).toEqual({ where });
          continue;
        }
        if (path === '/health/ready') continue;
        const media = unavailable?.content['application/problem+json'];
        const examples = media?.examples ? Object.values(media.examples).map((named) => named.value) : [media?.example];
        expect({ where, examples }).toEqual({
          where,
          examples: expect.arrayContaining([expect.objectContaining(storageUnavailable)]),
        });
        expect({ where, description: unavailable?.description }).toEqual({
          where,
          description: expect.stringContaining('`storage-unavailable`'),
        });
        expect({ where, retryAfter: unavailable?.headers?.['Retry-After']?.description }).toEqual({
          where,
          retryAfter: expect.stringContaining('2 when the database is unreachable'),
        });
      }
    }
    // A route's own 503s stay beside it, each a named example.
    const turn = document.paths['/chats/{chatId}/messages'].post.responses['503'] as Response;
    expect(Object.keys(turn.content['application/problem+json'].examples ?? {})).toEqual([
      'unavailable',
      'shuttingDown',
      'interrupted',
      'storageUnavailable',
    ]);
    const stop = document.paths['/chats/{chatId}/stop'].post.responses['503'] as Response;
    expect(stop.content['application/problem+json'].examples?.redisUnavailable.value).toMatchObject({
      type: 'urn:konko:problem:redis-unavailable',
      title: 'Redis is unreachable',
    });
  });

  it('should declare the bearer scheme for API keys, required everywhere but the health checks', () => {
    const security = document as unknown as {
      security: Record<string, string[]>[];
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
      paths: Record<string, Record<string, { security?: unknown[] }>>;
    };
    expect(security.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    // An API key is an opaque string, no JWT.
    expect(security.components.securitySchemes.apiKey).not.toHaveProperty('bearerFormat');
    expect(security.security).toEqual([{ apiKey: [] }]);
    for (const [path, operations] of Object.entries(security.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const open = path.startsWith('/health/');
        expect({ path, method, security: operation.security }).toEqual({
          path,
          method,
          security: open ? [] : undefined,
        });
      }
    }
  });

  it('should describe export and import: both import shapes, the Markdown and NDJSON answers, and their errors', () => {
    const statuses = (path: string, method: string) => Object.keys(document.paths[path][method].responses).sort();
    const exportChat = document.paths['/chats/{chatId}/export'].get;
    expect(Object.keys(exportChat.responses['200'].content ?? {})).toEqual(['application/json', 'text/markdown']);
    expect(exportChat.responses['200'].content?.['text/markdown'].example).toMatch(/^# /);
    expect(statuses('/chats/{chatId}/export', 'get')).toEqual(['200', '401', '404', '422', '429', '500', '503']);
    const exportAll = document.paths['/export'].get;
    expect(Object.keys(exportAll.responses['200'].content ?? {})).toEqual(['application/x-ndjson']);

    const importChat = document.paths['/chats/import'].post as Operation & {
      requestBody: { content: Record<string, { schema: { oneOf?: unknown[] }; examples?: object }> };
    };
    const body = importChat.requestBody.content['application/json'];
    expect(body.schema.oneOf).toEqual([
      { $ref: '#/components/schemas/ExportDocumentDto' },
      { $ref: '#/components/schemas/MessageListImportDto' },
    ]);
    expect(Object.keys(body.examples ?? {})).toEqual(['exportDocument', 'messageList']);
    expect(statuses('/chats/import', 'post')).toEqual(
      ['201', '400', '401', '409', '413', '415', '422', '429', '500', '503'].sort(),
    );
    expect(importChat.responses['413'].content?.['application/problem+json'].example).toMatchObject({ status: 413 });
  });

  it('should describe Idempotency-Key as the service checks it, and mark every success a repeat can answer', () => {
    type Parameter = { name: string; schema?: { pattern?: string } };
    type Responses = Record<string, { headers?: Record<string, unknown> }>;
    const operations = Object.entries(document.paths).flatMap(([path, byMethod]) =>
      Object.entries(byMethod).map(([method, operation]) => ({
        where: `${method.toUpperCase()} ${path}`,
        key: (operation as { parameters?: Parameter[] }).parameters?.find((p) => p.name === 'Idempotency-Key'),
        responses: operation.responses as Responses,
      })),
    );
    const idempotent = operations.filter((o) => o.key !== undefined);
    expect(idempotent.map((o) => o.where).sort()).toEqual(
      [
        'POST /chats',
        'POST /chats/import',
        'POST /chats/{chatId}/messages',
        'POST /chats/{chatId}/messages/{messageId}/regenerate',
      ].sort(),
    );
    for (const { where, key, responses } of operations) {
      if (key) {
        expect({ where, schema: key.schema }).toEqual({
          where,
          schema: { type: 'string', minLength: 1, maxLength: 255, pattern: expect.any(String) },
        });
        // The pattern is the service's: printable ASCII, space included, and nothing else.
        const pattern = new RegExp(key.schema!.pattern!);
        expect([' a-Z~0!', 'ключ', 'tab\t', 'del\x7f', ''].map((k) => pattern.test(k))).toEqual([
          true,
          false,
          false,
          false,
          false,
        ]);
      }
      for (const [status, response] of Object.entries(responses)) {
        const replayed = response.headers?.['Idempotent-Replayed'];
        const marked = key !== undefined && status.startsWith('2');
        expect({ where, status, replayed }).toEqual({
          where,
          status,
          replayed: marked
            ? { description: expect.any(String), schema: { type: 'string', enum: ['true'] } }
            : undefined,
        });
      }
    }
    // Beside the headers a route's own success response declares.
    for (const path of ['/chats', '/chats/import']) {
      const created = document.paths[path].post.responses['201'] as { headers: Record<string, unknown> };
      expect(Object.keys(created.headers).sort()).toEqual(['Idempotent-Replayed', 'Location']);
    }
  });

  it('should type counts, sequence numbers and limits as integers, with their bounds', () => {
    const property = (name: string, field: string) => {
      const schemas = document.components.schemas as Record<string, Schema>;
      return { at: `${name}.${field}`, ...schemas[name].properties?.[field] };
    };
    const integer = (at: string, minimum: number) => ({ at, type: 'integer', minimum });
    for (const [name, field, minimum] of [
      ['ChatDto', 'messageCount', 0],
      ['MessageDto', 'seq', 1],
      ['TokenUsageDto', 'promptTokens', 0],
      ['TokenUsageDto', 'completionTokens', 0],
      ['SummaryDto', 'messageCount', 0],
      ['SummaryDto', 'userMessageCount', 0],
      ['SummaryDto', 'assistantMessageCount', 0],
      ['SummaryDto', 'tokenCount', 0],
      ['ExportedChatDto', 'messageCount', 0],
      ['ExportedMessageDto', 'seq', 1],
      ['ExportedTokenUsageDto', 'promptTokens', 0],
    ] as const) {
      expect(property(name, field)).toMatchObject(integer(`${name}.${field}`, minimum));
    }
    expect(property('ProblemDto', 'status')).toMatchObject({ type: 'integer' });
    const limit = (path: string) =>
      (document.paths[path].get as Operation & { parameters: { name: string; schema: object }[] }).parameters.find(
        (p) => p.name === 'limit',
      )?.schema;
    expect(limit('/chats')).toMatchObject({ type: 'integer', minimum: 1, maximum: 100 });
    expect(limit('/chats/{chatId}/messages')).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000 });
    expect(limit('/search')).toMatchObject({ type: 'integer', minimum: 1, maximum: 100 });
    expect(property('SummaryDto', 'highlights')).toMatchObject({ type: 'array', maxItems: 5 });
    expect(property('SummaryDto', 'topics')).toMatchObject({ type: 'array', maxItems: 10 });
  });

  it('should pre-fill no parameter of a read with a value the service refuses, as Swagger UI sends examples', async () => {
    type Parameter = { name: string; in: string; example?: unknown; schema?: { example?: unknown } };
    const chatId = (await request(app.getHttpServer()).post('/chats').expect(201)).body.id as string;
    for (const [path, { get }] of Object.entries(document.paths)) {
      if (!get) continue;
      const query: Record<string, string> = {};
      const headers: Record<string, string> = {};
      for (const parameter of (get as Operation & { parameters?: Parameter[] }).parameters ?? []) {
        const example = parameter.example ?? parameter.schema?.example;
        if (example === undefined) continue;
        if (parameter.in === 'query') query[parameter.name] = String(example);
        if (parameter.in === 'header') headers[parameter.name] = String(example);
      }
      const response = await request(app.getHttpServer())
        .get(path.replace('{chatId}', chatId))
        .query(query)
        .set(headers);
      expect({ path, query, headers, refused: response.status >= 400 }).toEqual({
        path,
        query,
        headers,
        refused: false,
      });
    }
  });

  it('should refuse a query parameter an operation does not take, on every one but health and metrics', async () => {
    type Parameter = { name: string; in: string; required?: boolean; schema?: { example?: unknown } };
    const server = () => app.getHttpServer();
    const chatId = (await request(server()).post('/chats').expect(201)).body.id as string;
    const turn = await request(server()).post(`/chats/${chatId}/messages`).send({ content: 'Hi' }).expect(201);
    const bodies: Record<string, object> = {
      'POST /chats/{chatId}/messages': { content: 'Hi again' },
      'POST /chats/import': { messages: [] },
    };
    const tolerant = ['GET /health/live', 'GET /health/ready', 'GET /metrics'];
    // Last: it deletes the chat the others use.
    const operations = Object.entries(document.paths)
      .flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })))
      .sort((a, b) => Number(a.method === 'delete') - Number(b.method === 'delete'));
    for (const { path, method, operation } of operations) {
      const where = `${method.toUpperCase()} ${path}`;
      const query: Record<string, string> = { foo: '1' };
      for (const parameter of (operation as Operation & { parameters?: Parameter[] }).parameters ?? []) {
        if (parameter.in === 'query' && parameter.required) query[parameter.name] = String(parameter.schema?.example);
      }
      const url = path.replace('{chatId}', chatId).replace('{messageId}', turn.body.userMessage.id);
      const sent = request(server())[method as 'get' | 'post' | 'patch' | 'delete'](url).query(query);
      const response = await (bodies[where] ? sent.send(bodies[where]) : sent);
      if (tolerant.includes(where)) {
        expect({ where, status: response.status }).toEqual({ where, status: 200 });
        continue;
      }
      expect({ where, status: response.status, errors: response.body.errors }).toEqual({
        where,
        status: 422,
        errors: [{ field: 'foo', message: 'property foo should not exist' }],
      });
      expect({ where, documented: '422' in operation.responses }).toEqual({ where, documented: true });
    }
  });

  it('should refuse a fractional limit, as its integer type says', async () => {
    const refused = await request(app.getHttpServer()).get('/chats?limit=2.5').expect(422);
    expect(refused.body.errors).toEqual([expect.objectContaining({ field: 'limit' })]);
  });

  describe('problems', () => {
    const schema = (name: string) => document.components.schemas[name] as Schema & { required?: string[] };
    const problem = (path: string, method: string, status: string) =>
      document.paths[path][method].responses[status].content?.['application/problem+json'];
    const TURNS: [string, string][] = [
      ['/chats/{chatId}/messages', 'post'],
      ['/chats/{chatId}/messages/{messageId}/regenerate', 'post'],
    ];

    it("should describe a failed turn's partial reply as an optional assistantMessage", () => {
      const replyFailed = schema('ReplyFailedProblemDto');
      expect(replyFailed.properties?.assistantMessage).toMatchObject({
        allOf: [{ $ref: '#/components/schemas/MessageDto' }],
      });
      expect(replyFailed.required).toContain('userMessage');
      expect(replyFailed.required).not.toContain('assistantMessage');
      for (const [path, method] of TURNS) {
        const examples = Object.values(problem(path, method, '502')?.examples ?? {}).map((e) => e.value);
        expect(examples).toContainEqual(
          expect.objectContaining({ assistantMessage: expect.objectContaining({ status: 'incomplete' }) }),
        );
      }
    });

    it("should let a turn's 503 be a plain problem (shutting-down, nothing stored) or one with userMessage", () => {
      for (const [path, method] of TURNS) {
        const unavailable = problem(path, method, '503');
        expect(unavailable?.schema).toEqual({
          anyOf: [{ $ref: '#/components/schemas/ReplyFailedProblemDto' }, { $ref: '#/components/schemas/ProblemDto' }],
        });
        const examples = Object.values(unavailable?.examples ?? {}).map((e) => e.value as Record<string, unknown>);
        expect(examples).toContainEqual(
          expect.objectContaining({ type: 'urn:konko:problem:llm-unavailable', userMessage: expect.any(Object) }),
        );
        const shuttingDown = examples.find((e) => e.type === 'urn:konko:problem:shutting-down');
        expect(shuttingDown).toMatchObject({ status: 503, title: 'The service is shutting down' });
        expect(shuttingDown).not.toHaveProperty('userMessage');
        expect(document.paths[path][method].responses['503'].headers?.['Retry-After']).toBeDefined();
      }
    });

    it("should declare the Retry-After of the summary's 503 and of a key still in use (409)", () => {
      expect(document.paths['/chats/{chatId}/summary'].get.responses['503'].headers?.['Retry-After']).toMatchObject({
        schema: { type: 'integer' },
      });
      for (const path of ['/chats', '/chats/{chatId}/messages', '/chats/import']) {
        const conflict = document.paths[path].post.responses['409'];
        expect({
          path,
          type: (conflict.content?.['application/problem+json'].example as { type: string }).type,
        }).toEqual({ path, type: 'urn:konko:problem:idempotency-key-in-use' });
        expect({ path, retryAfter: conflict.headers?.['Retry-After']?.schema }).toMatchObject({
          path,
          retryAfter: { type: 'integer' },
        });
      }
    });

    it('should declare what stopping answers to a body it cannot read (400, 413, 415) or does not take (422)', async () => {
      const statuses = Object.keys(document.paths['/chats/{chatId}/stop'].post.responses);
      expect(statuses).toEqual(expect.arrayContaining(['400', '413', '415', '422']));
      const chatId = (await request(app.getHttpServer()).post('/chats').expect(201)).body.id;
      const stop = () => request(app.getHttpServer()).post(`/chats/${chatId}/stop`);
      await stop().set('Content-Type', 'text/plain').send('stop').expect(415);
      await stop().set('Content-Type', 'application/json').send('{"stop":').expect(400);
      // Fields are refused, as by regenerating, the other route that takes no body; none or `{}` is fine.
      const refused = await stop().send({ anything: true }).expect(422);
      expect(refused.body.errors).toEqual([{ field: 'anything', message: 'property anything should not exist' }]);
      await stop().send({}).expect(204);
      await stop().expect(204);
    });
  });

  describe('request bodies', () => {
    const schema = (name: string) => document.components.schemas[name] as Schema;
    const server = () => app.getHttpServer();

    it('should mark optional the bodies the service takes empty (creating a chat, updating one)', async () => {
      expect(document.paths['/chats'].post.requestBody?.required ?? false).toBe(false);
      expect(document.paths['/chats/{chatId}'].patch.requestBody?.required ?? false).toBe(false);
      // Sending a message still needs its content.
      expect(document.paths['/chats/{chatId}/messages'].post.requestBody?.required).toBe(true);
      const created = await request(server()).post('/chats').expect(201);
      await request(server()).patch(`/chats/${created.body.id}`).expect(200);
    });

    describe("as Swagger UI's Try it out pre-fills them", () => {
      // A service of another model than the examples name: the chats a reader starts should use it.
      const llm = new RecordingLlmProvider();
      let own: NestExpressApplication;
      beforeAll(async () => {
        own = await createTestApp({ llm, env: { LLM_MODEL: 'llama3.2' } });
      });
      afterAll(() => own.close());

      it("should be accepted in a reader's order, and reply with the service's model", async () => {
        const server = () => own.getHttpServer();
        type Media = {
          schema?: Schema & { example?: unknown };
          example?: unknown;
          examples?: Record<string, { value: unknown }>;
        };
        type Parameter = { name: string; in: string; example?: unknown; schema?: { example?: unknown } };
        /** What Swagger UI builds from a schema with no example of its own: each property's example. */
        const sample = (where: string, node: Schema & { example?: unknown }): unknown => {
          if (node.$ref) return sample(where, schema(node.$ref.replace('#/components/schemas/', '')));
          if (node.example !== undefined) return node.example;
          if (node.type !== 'object' || !node.properties) throw new Error(`${where}: Swagger UI would make a value up`);
          return Object.fromEntries(
            Object.entries(node.properties).map(([key, property]) => [key, sample(`${where}.${key}`, property)]),
          );
        };
        /** The body Try it out shows first, then the other examples a reader can pick. */
        const prefilled = (where: string, media: Media): [name: string, body: unknown][] => {
          if (media.examples) return Object.entries(media.examples).map(([name, { value }]) => [name, value]);
          if (media.example !== undefined) return [['example', media.example]];
          return [['sampled', sample(where, media.schema ?? {})]];
        };
        // A new user's order: a chat first, then a message in it; the rest use both.
        const rank = (path: string) => (path === '/chats' ? 0 : path.endsWith('/messages') ? 1 : 2);
        const writes = Object.entries(document.paths)
          .flatMap(([path, methods]) =>
            Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
          )
          .filter(({ operation }) => operation.requestBody)
          .sort((a, b) => rank(a.path) - rank(b.path));
        let chatId = '';
        let messageId = '';
        const tried: string[] = [];
        for (const { path, method, operation } of writes) {
          const where = `${method.toUpperCase()} ${path}`;
          const query: Record<string, string> = {};
          for (const parameter of (operation as Operation & { parameters?: Parameter[] }).parameters ?? []) {
            const example = parameter.example ?? parameter.schema?.example;
            if (parameter.in === 'query' && example !== undefined) query[parameter.name] = String(example);
          }
          const media = operation.requestBody!.content['application/json'] as Media;
          for (const [name, body] of prefilled(where, media)) {
            const url = path.replace('{chatId}', chatId).replace('{messageId}', messageId);
            const response = await request(server())
              [method as 'post' | 'patch'](url)
              .query(query)
              .send(body as object);
            tried.push(where);
            expect({ where, name, body, refused: response.status >= 300 ? response.body : undefined }).toEqual({
              where,
              name,
              body,
              refused: undefined,
            });
            if (path === '/chats') chatId ||= response.body.id;
            if (path.endsWith('/messages')) messageId ||= response.body.userMessage.id;
          }
        }
        expect([...new Set(tried)].sort()).toEqual(
          [
            'PATCH /chats/{chatId}',
            'POST /chats',
            'POST /chats/import',
            'POST /chats/{chatId}/messages',
            'POST /chats/{chatId}/messages/{messageId}/regenerate',
            'POST /chats/{chatId}/stop',
          ].sort(),
        );
        expect(llm.calls.length).toBeGreaterThan(0);
        expect(new Set(llm.calls.map(({ request }) => request.model))).toEqual(new Set(['llama3.2']));
      });
    });

    it('should close every object a request body holds, as the service refuses unknown fields (422)', () => {
      // Every schema a body reaches, through references, alternatives, arrays and properties.
      const seen = new Set<string>();
      const objects: [where: string, schema: Schema][] = [];
      const walk = (where: string, node: Schema | undefined): void => {
        if (!node) return;
        if (node.$ref) {
          const name = node.$ref.replace('#/components/schemas/', '');
          if (!seen.has(name)) {
            seen.add(name);
            walk(name, schema(name));
          }
          return;
        }
        for (const alternative of [...(node.oneOf ?? []), ...(node.anyOf ?? []), ...(node.allOf ?? [])]) {
          walk(where, alternative);
        }
        walk(`${where}[]`, node.items);
        if (node.properties) objects.push([where, node]);
        for (const [key, property] of Object.entries(node.properties ?? {})) walk(`${where}.${key}`, property);
      };
      for (const [path, operations] of Object.entries(document.paths)) {
        for (const [method, operation] of Object.entries(operations)) {
          for (const media of Object.values(operation.requestBody?.content ?? {})) {
            walk(`${method.toUpperCase()} ${path}`, media.schema as Schema);
          }
        }
      }
      expect([...seen].sort()).toEqual(
        expect.arrayContaining([
          'CreateChatDto',
          'ExportDocumentDto',
          'ImportedMessageDto',
          'MessageListImportDto',
          'SendMessageDto',
          'UpdateChatDto',
        ]),
      );
      // The export document's chat, its messages and their usage are objects of their own.
      expect(objects.length).toBeGreaterThanOrEqual(9);
      for (const [where, object] of objects) {
        expect({ where, additionalProperties: object.additionalProperties }).toEqual({
          where,
          additionalProperties: false,
        });
      }
      // Metadata is a map of any keys, of string values.
      for (const name of ['CreateChatDto', 'UpdateChatDto', 'MessageListImportDto']) {
        expect(schema(name).properties?.metadata.additionalProperties).toMatchObject({ type: 'string' });
      }
      // Responses stay open: a client should expect the service to add fields.
      expect(schema('ChatDto').additionalProperties).toBeUndefined();
      expect(schema('MessageDto').additionalProperties).toBeUndefined();
    });

    it('should say in the schema which strings must not be blank, as the service refuses "" and "   "', () => {
      const notBlank = { minLength: 1, pattern: '\\S' };
      const fields: [string, string][] = [
        ['CreateChatDto', 'title'],
        ['CreateChatDto', 'systemPrompt'],
        ['CreateChatDto', 'model'],
        ['UpdateChatDto', 'title'],
        ['UpdateChatDto', 'systemPrompt'],
        ['MessageListImportDto', 'title'],
        ['MessageListImportDto', 'systemPrompt'],
        ['MessageListImportDto', 'model'],
        ['SendMessageDto', 'content'],
      ];
      for (const [name, field] of fields) {
        expect({ name, field, ...schema(name).properties?.[field] }).toMatchObject({ name, field, ...notBlank });
      }
      const search = document.paths['/search'].get as Operation & { parameters: { name: string; schema: Schema }[] };
      expect(search.parameters.find((p) => p.name === 'q')?.schema).toMatchObject(notBlank);
      const pattern = new RegExp(notBlank.pattern);
      expect(['', '   ', '\t\n'].filter((text) => pattern.test(text))).toEqual([]);
      expect(pattern.test('  Lisbon ')).toBe(true);
    });
  });

  it('should describe the streamed reply and its events', () => {
    const operation = document.paths['/chats/{chatId}/messages'].post as Operation & {
      parameters: { name: string; in: string }[];
    };
    expect(Object.keys(operation.responses['201'].content ?? {})).toEqual(['application/json']);
    const streamed = operation.responses['200'] as {
      description?: string;
      content?: Record<string, { example?: string }>;
    };
    expect(Object.keys(streamed.content ?? {})).toEqual(['text/event-stream']);
    for (const event of ['user_message', 'delta', 'assistant_message', 'error']) {
      expect(streamed.description).toContain(`\`${event}\``);
    }
    expect(streamed.content?.['text/event-stream'].example).toContain('event: delta');
    expect(operation.parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'stream', in: 'query' })]),
    );
    expect(document.components.schemas).toHaveProperty('DeltaEventDto');
  });
});
