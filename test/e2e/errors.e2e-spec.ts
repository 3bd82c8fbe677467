import { NestExpressApplication } from '@nestjs/platform-express';
import { once } from 'node:events';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import request from 'supertest';
import { AppLogger } from '../../src/logging/app-logger';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { deferred } from '../support/deferred';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';

const PROBLEM = /^application\/problem\+json/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A connection that writes what a test gives it: what the service answered, as text, and its end. */
function rawConnection(port: number) {
  const socket = connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let received = '';
  socket.on('data', (chunk: string) => (received += chunk));
  // A connection cut with bytes unread is reset: what came before still counts.
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  const receivedText = (text: string) =>
    new Promise<void>((resolve) => {
      const check = () => received.includes(text) && resolve();
      socket.on('data', check);
      check();
    });
  return { socket, received: () => received, receivedText, closed };
}

/** Writes `raw` on a new connection and reads the response until the service closes it. */
async function exchange(port: number, raw: string) {
  const connection = rawConnection(port);
  connection.socket.write(raw);
  await connection.closed;
  const text = connection.received();
  const headEnd = text.indexOf('\r\n\r\n');
  const [statusLine, ...lines] = text.slice(0, headEnd).split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  return { statusLine, headers, body: text.slice(headEnd + 4) };
}

/** The routes whose body is a JSON object of fields, each as `[method, path]`. */
const routesTakingABody = (chatId: string) =>
  [
    ['post', '/chats'],
    ['patch', `/chats/${chatId}`],
    ['post', `/chats/${chatId}/messages`],
    ['post', '/chats/import'],
  ] as const;

describe('Problem documents (e2e)', () => {
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    app = await createTestApp();
  });
  afterEach(() => app.close());

  /** Sends `bytes` as they are: superagent would send a Buffer as JSON under a JSON media type. */
  const sendBytes = (method: 'post' | 'patch', path: string, contentType: string, bytes: Buffer) =>
    http()
      [method](path)
      .set('Content-Type', contentType)
      .serialize(() => bytes as unknown as string)
      .send(bytes);

  const expectProblem = (response: request.Response, status: number, instance: string) => {
    expect(response.status).toBe(status);
    expect(response.headers['content-type']).toMatch(PROBLEM);
    expect(response.body).toEqual(
      expect.objectContaining({
        type: expect.any(String),
        title: expect.any(String),
        status,
        detail: expect.any(String),
        instance,
      }),
    );
  };

  it('should answer malformed JSON with 400', async () => {
    const response = await http().post('/chats').set('Content-Type', 'application/json').send('{"title": ');
    expectProblem(response, 400, '/chats');
    expect(response.body.detail).toBe('The request body is not valid JSON.');
    // The import route reads its bodies with a parser of its own.
    const imported = await http().post('/chats/import').set('Content-Type', 'application/json').send('{"chat": ');
    expectProblem(imported, 400, '/chats/import');
    expect(imported.body.detail).toBe('The request body is not valid JSON.');
  });

  it('should answer a body over the limit with 413', async () => {
    const response = await http()
      .post('/chats')
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ title: 'x'.repeat(2 * 1024 * 1024) }));
    expectProblem(response, 413, '/chats');
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x'])(
    'should answer a %s body with 415',
    async (contentType) => {
      const response = await http().post('/chats').set('Content-Type', contentType).send('title=x');
      expectProblem(response, 415, '/chats');
    },
  );

  it.each(['application/merge-patch+json', 'application/vnd.acme+json'])(
    'should answer a JSON body sent as %s with 415, storing nothing',
    async (contentType) => {
      const response = await http().post('/chats').set('Content-Type', contentType).send('{"title":"b"}');
      expectProblem(response, 415, '/chats');
      expect((await http().get('/chats').expect(200)).body.data).toEqual([]);
    },
  );

  it.each(['utf-8', 'UTF-8', '"utf-8"'])('should accept a JSON body with charset=%s', async (charset) => {
    await http()
      .post('/chats')
      .set('Content-Type', `application/json; charset=${charset}`)
      .send('{"title":"a"}')
      .expect(201);
  });

  it.each([
    ['utf-16le', Buffer.from('{"title":"a"}', 'utf16le')],
    ['utf-16', Buffer.from('\ufeff{"title":"a"}', 'utf16le')],
    ['UTF-32', Buffer.from('{}')],
    ['latin1', Buffer.from('{"title":"a"}', 'latin1')],
    ['utf8', Buffer.from('{"title":"a"}')],
  ])('should answer a body sent with charset=%s with 415, on the import route too', async (charset, body) => {
    for (const path of ['/chats', '/chats/import']) {
      const response = await sendBytes('post', path, `application/json; charset=${charset}`, body);
      expectProblem(response, 415, path);
      expect(response.body.detail).toBe('Request bodies must be UTF-8: send no charset parameter, or charset=utf-8.');
    }
    expect((await http().get('/chats').expect(200)).body.data).toEqual([]);
  });

  it.each([
    ['a byte UTF-8 never has', '{"title":"a\xff"}'],
    ['a cut-off sequence', '{"title":"a\xe2\x82"}'],
    ['an overlong encoding', '{"title":"\xc0\xaf"}'],
    ['an encoded surrogate', '{"title":"\xed\xa0\x80"}'],
  ])('should answer a body with %s, not UTF-8, with 400 on every route that takes a body', async (_case, text) => {
    const chat = (await http().post('/chats').expect(201)).body as { id: string };
    for (const [method, path] of routesTakingABody(chat.id)) {
      const response = await sendBytes(method, path, 'application/json', Buffer.from(text, 'latin1'));
      expectProblem(response, 400, path);
      expect(response.body.detail).toBe('The request body is not valid UTF-8.');
    }
    const chats = (await http().get('/chats').expect(200)).body.data as { title: string | null }[];
    expect(chats).toEqual([expect.objectContaining({ id: chat.id, title: null, messageCount: 0 })]);
  });

  it.each(['"hello', 'nul', '42x', '{"title": "a"} []', ' '])(
    'should answer malformed JSON %j with 400, on the import route too',
    async (body) => {
      for (const path of ['/chats', '/chats/import']) {
        const response = await http().post(path).set('Content-Type', 'application/json').send(body);
        expectProblem(response, 400, path);
        expect(response.body.detail).toBe('The request body is not valid JSON.');
      }
    },
  );

  it.each([
    ['an array', '[]'],
    ['a string', '"hello"'],
    ['a JSON null', 'null'],
    ['a number', '42'],
    ['a boolean', 'false'],
  ])('should answer %s as the body with 422 on every route that takes a body', async (_case, body) => {
    const chat = (await http().post('/chats').expect(201)).body as { id: string };
    const turn = await http().post(`/chats/${chat.id}/messages`).send({ content: 'hi' }).expect(201);
    const regenerate = `/chats/${chat.id}/messages/${turn.body.userMessage.id}/regenerate`;
    for (const [method, path] of [...routesTakingABody(chat.id), ['post', regenerate] as const]) {
      const response = await http()[method](path).set('Content-Type', 'application/json').send(body);
      expectProblem(response, 422, path);
      expect(response.body).toMatchObject({
        type: 'urn:konko:problem:validation-failed',
        errors: [{ field: 'body', message: 'the body must be a JSON object' }],
      });
    }
    // No body at all is no body: the chat is created.
    await http().post('/chats').expect(201);
    await http().post('/chats').set('Content-Type', 'application/json').set('Content-Length', '0').expect(201);
  });

  it.each(['gzip', 'deflate', 'br'])(
    'should answer a body that is not the %s it says it is with 400',
    async (encoding) => {
      const response = await http()
        .post('/chats')
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', encoding)
        .send('{"title":"not compressed at all"}')
        .expect(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.body).toMatchObject({ status: 400, detail: expect.stringContaining('Content-Encoding') });
    },
  );

  it('should answer a body nested deeper than any route takes with 422, however deep', async () => {
    for (const depth of [40, 50_000]) {
      const body = `{"messages":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      for (const path of ['/chats', '/chats/import']) {
        const response = await http().post(path).set('Content-Type', 'application/json').send(body).expect(422);
        expect(response.body.errors).toEqual([
          { field: expect.stringMatching(/^messages(\[0\])+$/), message: expect.stringContaining('nested') },
        ]);
      }
    }
  });

  it('should answer unknown routes and methods with 404', async () => {
    expectProblem(await http().get('/nothing/here'), 404, '/nothing/here');
    expectProblem(await http().put('/chats'), 404, '/chats');
  });

  it("should name the path alone, never the query, which can hold a search's words", async () => {
    expectProblem(await http().get('/chats?limit=0'), 422, '/chats');
    const search = await http().get('/search?q=my+secret+words&limit=0');
    expectProblem(search, 422, '/search');
    const unknown = await http().get('/serach?q=my+secret+words');
    expectProblem(unknown, 404, '/serach');
    expect(JSON.stringify([search.body, unknown.body])).not.toContain('secret');
  });

  describe("with a request Node's HTTP parser refuses", () => {
    const listen = async () => Number(new URL(await listenOnLoopback(app)).port);

    const expectParserProblem = (response: Awaited<ReturnType<typeof exchange>>, status: number, detail: string) => {
      expect(response.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(response.headers).toMatchObject({
        'content-type': 'application/problem+json',
        'content-length': String(Buffer.byteLength(response.body)),
        connection: 'close',
        'x-request-id': expect.stringMatching(UUID),
      });
      expect(JSON.parse(response.body)).toEqual({
        type: 'about:blank',
        title: response.statusLine.replace(/^HTTP\/1\.1 \d+ /, ''),
        status,
        detail,
        instance: `urn:uuid:${response.headers['x-request-id']}`,
      });
    };

    it('should answer headers too large with a 431 problem', async () => {
      const port = await listen();
      const response = await exchange(port, `GET /search?q=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expectParserProblem(response, 431, "The request's headers are too large.");
    });

    it.each([
      ['a Content-Length that is no number', 'POST /chats HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
      ['a request line that is no HTTP', 'HELLO THERE\r\n\r\n'],
      ['a chunk size that is no number', 'POST /chats HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ])('should answer %s with a 400 problem', async (_case, raw) => {
      const port = await listen();
      expectParserProblem(await exchange(port, raw), 400, 'The request could not be read as HTTP.');
    });

    it('should answer an HTTP/1.1 request without Host with a 400 problem, and take HTTP/1.0 without one', async () => {
      const port = await listen();
      const response = await exchange(port, 'GET /chats HTTP/1.1\r\n\r\n');
      expect(response.statusLine).toMatch(/^HTTP\/1\.1 400 /);
      expect(response.headers).toMatchObject({
        'content-type': expect.stringMatching(PROBLEM),
        'x-request-id': expect.stringMatching(UUID),
      });
      expect(JSON.parse(response.body)).toEqual({
        type: 'about:blank',
        title: 'Bad Request',
        status: 400,
        detail: 'An HTTP/1.1 request must carry a Host header.',
        instance: '/chats',
      });
      const older = await exchange(port, 'GET /chats HTTP/1.0\r\n\r\n');
      expect(older.statusLine).toMatch(/^HTTP\/1\.1 200 /);
    });

    it('should answer an Expect it cannot meet with a 417 problem', async () => {
      const port = await listen();
      const response = await exchange(port, 'GET /chats?limit=5 HTTP/1.1\r\nHost: x\r\nExpect: coffee\r\n\r\n');
      expect(response.statusLine).toMatch(/^HTTP\/1\.1 417 /);
      expect(response.headers).toMatchObject({
        'content-type': 'application/problem+json',
        'x-request-id': expect.stringMatching(UUID),
      });
      expect(JSON.parse(response.body)).toEqual({
        type: 'about:blank',
        title: 'Expectation Failed',
        status: 417,
        detail: 'The service meets no Expect but 100-continue.',
        instance: '/chats',
      });
    });

    it('should answer chunk extensions too large with a 413 problem', async () => {
      const port = await listen();
      const raw = `POST /chats HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;${'a'.repeat(20_000)}\r\n`;
      expectParserProblem(await exchange(port, raw), 413, "The request's chunk extensions are too large.");
    });

    it('should answer a request whose headers do not arrive in time with a 408 problem', async () => {
      const server = app.getHttpServer();
      // Checked every 30 s by default: tightened before the service listens, when Node reads them.
      Object.assign(server, { headersTimeout: 200, requestTimeout: 300, connectionsCheckingInterval: 50 });
      const port = await listen();
      const response = await exchange(port, 'GET /chats HTTP/1.1\r\nHost: x\r\n');
      expectParserProblem(response, 408, 'The request did not arrive in time.');
    });

    it('should cut a connection whose response has begun rather than write into it', async () => {
      await app.close();
      const gate = deferred();
      const llm = new RecordingLlmProvider(async (request) => {
        await gate.promise;
        return echoReply(request);
      });
      app = await createTestApp({ llm });
      const port = await listen();
      const chat = (await http().post('/chats').expect(201)).body as { id: string };
      const connection = rawConnection(port);
      const body = JSON.stringify({ content: 'hi' });
      connection.socket.write(
        `POST /chats/${chat.id}/messages HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      await connection.receivedText('event: user_message');
      connection.socket.write('HELLO THERE\r\n\r\n');
      await connection.closed;
      gate.resolve();
      expect(connection.received()).toMatch(/^HTTP\/1\.1 200 /);
      expect(connection.received()).not.toContain('HTTP/1.1 400');
    });
  });

  describe('with a path id that cannot be percent-decoded', () => {
    // Bad escapes, a cut-off one, and escapes that are no UTF-8 (an overlong lead byte).
    const UNDECODABLE = ['%ZZ', '%E0%A4%A', '%C0', '%', 'abc%2'];

    const expectNotFound = (response: request.Response, type: string, path: string) => {
      expectProblem(response, 404, path);
      expect(response.body.type).toBe(`urn:konko:problem:${type}`);
    };

    it.each([
      ['get', ''],
      ['patch', ''],
      ['delete', ''],
      ['get', '/messages'],
      ['post', '/messages'],
      ['post', '/stop'],
      ['get', '/stream'],
      ['get', '/summary'],
      ['get', '/export'],
    ] as const)('should answer %s /chats/{chatId}%s as an unknown chat', async (method, rest) => {
      for (const id of UNDECODABLE) {
        const path = `/chats/${id}${rest}`;
        expectNotFound(await http()[method](path), 'chat-not-found', path);
      }
    });

    it('should answer a regeneration of such a message as an unknown message', async () => {
      const chat = await http().post('/chats').expect(201);
      for (const id of UNDECODABLE) {
        const path = `/chats/${chat.body.id}/messages/${id}/regenerate`;
        expectNotFound(await http().post(path), 'message-not-found', path);
        const inUnknownChat = `/chats/${id}/messages/${id}/regenerate`;
        expectNotFound(await http().post(inUnknownChat), 'chat-not-found', inUnknownChat);
      }
    });

    it('should answer unknown routes and methods on such paths as unknown routes', async () => {
      for (const [method, path] of [
        ['get', '/nothing/%ZZ'],
        ['get', '/chats/%ZZ/nothing'],
        ['get', '/playground/%ZZ'],
        ['get', '/%C0'],
        ['put', '/chats/%ZZ'],
      ] as const) {
        const response = await http()[method](path);
        expectProblem(response, 404, path);
        expect(response.body.type).toBe('about:blank');
      }
    });

    it('should answer them alike when API keys are checked before routing', async () => {
      await app.close();
      app = await createTestApp({ env: { API_KEYS: 'acme:acme-3f9c1e7a5b2d4c6e8f0a' } });
      const auth = { Authorization: 'Bearer acme-3f9c1e7a5b2d4c6e8f0a' };
      expectNotFound(await http().get('/chats/%ZZ').set(auth), 'chat-not-found', '/chats/%ZZ');
      expectProblem(await http().get('/chats/%ZZ'), 401, '/chats/%ZZ');
    });
  });

  it('should answer validation failures with 422 and errors[]', async () => {
    const response = await http().post('/chats').send({ title: 5, extra: true });
    expectProblem(response, 422, '/chats');
    expect(response.body.type).toBe('urn:konko:problem:validation-failed');
    expect(response.body.errors).toEqual(
      expect.arrayContaining([
        { field: 'title', message: expect.any(String) },
        { field: 'extra', message: expect.any(String) },
      ]),
    );
  });

  it('should name one error a field, the most basic, and say the same in detail', async () => {
    const chat = (await http().post('/chats').expect(201)).body as { id: string };
    const messages = `/chats/${chat.id}/messages`;
    const cases: [request.Test, string, string][] = [
      [http().post(messages).send({}), 'content', 'content is required'],
      [http().post(messages), 'content', 'content is required'],
      [http().post(messages).send({ content: 5 }), 'content', 'content must be a string'],
      [http().post(messages).send({ content: '   ' }), 'content', 'content must not be blank'],
      [http().get('/search'), 'q', 'q is required'],
      [http().get('/search?q=a&q=b'), 'q', 'q must be a string'],
      [http().get('/chats?limit=abc'), 'limit', 'limit must be an integer number'],
      [http().get('/chats?limit=1&limit=2'), 'limit', 'limit must be an integer number'],
      [http().get('/chats?limit=0'), 'limit', 'limit must not be less than 1'],
      [http().get('/chats?cursor=a&cursor=b'), 'cursor', 'cursor must be a string'],
      [http().post('/chats').send({ title: 5 }), 'title', 'title must be a string'],
      [http().patch(`/chats/${chat.id}`).send({ systemPrompt: [] }), 'systemPrompt', 'systemPrompt must be a string'],
      [
        http()
          .post('/chats/import')
          .send({ messages: [{ role: 'user' }] }),
        'messages[0].content',
        'content is required',
      ],
    ];
    for (const [sent, field, message] of cases) {
      const response = await sent.expect(422);
      expect(response.body).toMatchObject({
        type: 'urn:konko:problem:validation-failed',
        errors: [{ field, message }],
        detail: `${field}: ${message}`,
      });
      expect(response.body.errors).toHaveLength(1);
    }
  });

  it('should answer an unexpected exception with 500 and no internals', async () => {
    await app.close();
    const repository = new InMemoryChatRepository();
    jest.spyOn(repository, 'listChats').mockRejectedValue(new Error('disk on fire at /var/secret/path'));
    app = await createTestApp({ repository });
    // The service's log, as main.ts sets it up (Nest's logger on pino), written to memory.
    const lines: string[] = [];
    const log = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    app.useLogger(new AppLogger(pino({ level: 'info' }, log)));

    try {
      const response = await http().get('/chats').set('X-Request-Id', 'req-500');
      expectProblem(response, 500, '/chats');
      const text = JSON.stringify(response.body);
      expect(text).not.toMatch(/disk on fire|secret|at .*\.ts/);
      // The log keeps what the client is not told, under the request's id.
      expect(lines.map((line) => JSON.parse(line))).toContainEqual(
        expect.objectContaining({
          level: pino.levels.values.error,
          context: 'ProblemDetails',
          msg: 'GET /chats failed',
          req: { id: 'req-500' },
          err: expect.objectContaining({ message: 'disk on fire at /var/secret/path', stack: expect.any(String) }),
        }),
      );
    } finally {
      // As createTestApp leaves it: no logger.
      app.useLogger(false);
    }
  });
});
