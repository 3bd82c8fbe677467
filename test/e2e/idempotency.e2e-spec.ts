import { request as httpRequest } from 'node:http';
import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { ChatDto } from '../../src/chats/dto/chat.dto';
import { ChatRepository } from '../../src/chats/chat.repository';
import { IdempotencyStore } from '../../src/idempotency/idempotency.store';
import { LlmUnavailableError } from '../../src/llm/llm-errors';
import { MessageDto, TurnDto } from '../../src/messages/dto/message.dto';
import { deferred } from '../support/deferred';
import { EventStreamClient } from '../support/event-stream-client';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];

describe.each(storages)('Idempotency-Key on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());

  const start = async (env: Record<string, string> = {}) => {
    database = createDatabase ? await createDatabase() : undefined;
    app = await createTestApp({ llm, env: { ...(database && { DATABASE_URL: database.url }), ...env } });
  };
  const newChat = async () => ((await http().post('/chats').expect(201)).body as ChatDto).id;
  const send = (chatId: string, content: string, key?: string) => {
    const req = http().post(`/chats/${chatId}/messages`);
    if (key !== undefined) req.set('Idempotency-Key', key);
    return req.send({ content });
  };
  const messagesOf = async (chatId: string, branch: 'current' | 'all' = 'current') =>
    (await http().get(`/chats/${chatId}/messages?branch=${branch}`).expect(200)).body.data as MessageDto[];

  beforeEach(() => {
    llm = new RecordingLlmProvider();
  });
  afterEach(async () => {
    await app?.close();
    await database?.drop();
    jest.restoreAllMocks();
  });

  it('should create one chat for repeats of POST /chats, and answer each repeat with it', async () => {
    await start();
    const body = { title: 'Trip', metadata: { plan: 'pro' } };
    const first = await http().post('/chats').set('Idempotency-Key', 'create-1').send(body).expect(201);
    await http().patch(`/chats/${first.body.id}`).send({ title: 'Renamed' }).expect(200);
    const repeat = await http().post('/chats').set('Idempotency-Key', 'create-1').send(body).expect(201);

    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(repeat.headers.location).toBe(`/chats/${first.body.id}`);
    expect(repeat.body).toEqual(first.body);
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);

    const other = await http().post('/chats').set('Idempotency-Key', 'create-1').send({ title: 'Other' }).expect(422);
    expect(other.body).toMatchObject({
      type: 'urn:konko:problem:idempotency-key-reused',
      errors: [{ field: 'Idempotency-Key', message: 'already used with another request body' }],
    });
    await http().post('/chats').set('Idempotency-Key', 'create-2').send(body).expect(201);
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(2);
  });

  it.each([
    ['POST /chats', '/chats', { title: 'Trip' }],
    ['an import', '/chats/import', { messages: [{ role: 'user', content: 'Hello' }] }],
  ])('should create one chat for %s whose first attempt could not record it', async (_what, path, body) => {
    await start();
    jest.spyOn(app.get(IdempotencyStore), 'complete').mockRejectedValueOnce(new Error('storage hiccup'));
    const first = await http().post(path).set('Idempotency-Key', 'create-c').send(body).expect(201);
    // The key was left running; once its lease lapses a repeat takes it over and finds the chat.
    jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 60_000);
    const repeat = await http().post(path).set('Idempotency-Key', 'create-c').send(body).expect(201);

    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(repeat.headers.location).toBe(`/chats/${first.body.id}`);
    expect(repeat.body).toEqual(first.body);
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);
    expect((await http().post(path).set('Idempotency-Key', 'create-c').send(body).expect(201)).body).toEqual(
      first.body,
    );
  });

  it.each([
    ['POST /chats', '/chats', { title: 'Trip' }, 'createChat'],
    ['an import', '/chats/import', { messages: [{ role: 'user', content: 'Hello' }] }, 'importChat'],
  ] as const)('should answer %s with its chat when storing it failed after all', async (_what, path, body, method) => {
    await start();
    const repository = app.get(ChatRepository);
    const store = repository[method].bind(repository) as (input: unknown) => Promise<unknown>;
    // The chat is stored, but the storage's answer is lost.
    jest.spyOn(repository, method).mockImplementationOnce((async (input: unknown) => {
      await store(input);
      throw new Error('connection reset');
    }) as never);
    const first = await http().post(path).set('Idempotency-Key', 'create-s').send(body).expect(201);
    const listed = (await http().get('/chats').expect(200)).body.data as ChatDto[];
    expect(listed.map((chat) => chat.id)).toEqual([first.body.id]);
    const repeat = await http().post(path).set('Idempotency-Key', 'create-s').send(body).expect(201);
    expect(repeat.body).toEqual(first.body);
  });

  it('should answer a repeated message with the first turn, plain or streamed, without calling the LLM again', async () => {
    await start();
    const chatId = await newChat();
    const first = (await send(chatId, 'Hello', 'turn-1').expect(201)).body as TurnDto;
    const repeat = await send(chatId, 'Hello', 'turn-1').expect(201);
    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(repeat.body).toEqual(first);

    const baseUrl = await listenOnLoopback(app);
    const streamed = await EventStreamClient.post(
      `${baseUrl}/chats/${chatId}/messages`,
      { content: 'Hello' },
      { 'Idempotency-Key': 'turn-1' },
    );
    expect(streamed.response.headers.get('idempotent-replayed')).toBe('true');
    expect((await streamed.all()).map((e) => [e.event, e.data])).toEqual([
      ['user_message', first.userMessage],
      ['delta', { content: first.assistantMessage.content }],
      ['assistant_message', first.assistantMessage],
    ]);
    expect(llm.calls).toHaveLength(1);
    expect((await messagesOf(chatId)).map((m) => m.seq)).toEqual([1, 2]);
  });

  it('should replay a streamed turn to a plain repeat', async () => {
    await start();
    const chatId = await newChat();
    const baseUrl = await listenOnLoopback(app);
    const streamed = await EventStreamClient.post(
      `${baseUrl}/chats/${chatId}/messages`,
      { content: 'Stream first' },
      { 'Idempotency-Key': 'turn-s' },
    );
    const events = await streamed.all();
    const repeat = (await send(chatId, 'Stream first', 'turn-s').expect(201)).body as TurnDto;
    expect(repeat).toEqual({ userMessage: events[0].data, assistantMessage: events[events.length - 1].data });
    expect(llm.calls).toHaveLength(1);
  });

  it('should reuse the stored user message after an upstream failure and only generate the reply', async () => {
    await start();
    const chatId = await newChat();
    llm.respond = (req, call) => {
      if (call === 1) throw new LlmUnavailableError('The language model answered HTTP 503.');
      return echoReply(req);
    };
    const failed = await send(chatId, 'Plan my day', 'turn-f').expect(503);
    const stored = failed.body.userMessage as MessageDto;
    // Another client's turn lands in between; the repeat still answers its own message.
    await send(chatId, 'Unrelated question').expect(201);

    const retried = (await send(chatId, 'Plan my day', 'turn-f').expect(201)).body as TurnDto;
    expect(retried.userMessage).toEqual(stored);
    expect(retried.assistantMessage).toMatchObject({ inReplyTo: stored.id, content: 'reply to: Plan my day' });
    const lastCall = llm.calls[llm.calls.length - 1].request.messages;
    expect(lastCall.map((m) => m.content).slice(1)).toEqual(['Plan my day']);

    const messages = await messagesOf(chatId, 'all');
    expect(messages.filter((m) => m.content === 'Plan my day')).toHaveLength(1);
    expect(messages.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    // The other turn followed the message that had no reply yet; the late reply is a branch of its own.
    expect((await messagesOf(chatId)).map((m) => m.seq)).toEqual([1, 4]);
    expect((await send(chatId, 'Plan my day', 'turn-f').expect(201)).body).toEqual(retried);
    expect(llm.calls).toHaveLength(3);
  });

  it('should not generate a second reply when the first attempt stored it but could not record it', async () => {
    await start();
    const chatId = await newChat();
    jest.spyOn(app.get(IdempotencyStore), 'complete').mockRejectedValueOnce(new Error('storage hiccup'));
    const first = (await send(chatId, 'Once only', 'turn-c').expect(201)).body as TurnDto;
    // The key was left running; once its lease lapses a repeat takes it over and finds the reply.
    jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 60_000);
    expect((await send(chatId, 'Once only', 'turn-c').expect(201)).body).toEqual(first);
    expect(llm.calls).toHaveLength(1);
    expect((await messagesOf(chatId)).map((m) => m.seq)).toEqual([1, 2]);
  });

  it('should name a repeat that finds the stored reply by it, so that later repeats find it too', async () => {
    await start();
    const chatId = await newChat();
    const baseUrl = await listenOnLoopback(app);
    // Neither the first attempt nor the repeat can record its outcome: each key is left running.
    jest
      .spyOn(app.get(IdempotencyStore), 'complete')
      .mockRejectedValueOnce(new Error('storage hiccup'))
      .mockRejectedValueOnce(new Error('storage hiccup'));
    const first = (await send(chatId, 'Once only', 'turn-n').expect(201)).body as TurnDto;
    const now = Date.now();
    const leaseLapsed = jest.spyOn(Date, 'now').mockReturnValue(now + 60_000);

    const repeat = await EventStreamClient.post(
      `${baseUrl}/chats/${chatId}/messages`,
      { content: 'Once only' },
      { 'Idempotency-Key': 'turn-n' },
    );
    const events = await repeat.all();
    const turnName = `${first.userMessage.id}.${first.assistantMessage.id}`;
    expect(events.map((e) => [e.event, e.id])).toEqual([
      ['user_message', `${turnName}.0`],
      ['delta', `${turnName}.1`],
      ['assistant_message', `${turnName}.2`],
    ]);
    expect(events.at(-1)!.data).toEqual(first.assistantMessage);
    const resumed = await (
      await EventStreamClient.get(`${baseUrl}/chats/${chatId}/stream`, { 'Last-Event-ID': events.at(-1)!.id! })
    ).all();
    expect(resumed.map((e) => [e.event, e.data])).toEqual([['assistant_message', first.assistantMessage]]);

    leaseLapsed.mockReturnValue(now + 120_000);
    expect((await send(chatId, 'Once only', 'turn-n').expect(201)).body).toEqual(first);
    expect(llm.calls).toHaveLength(1);
    expect((await messagesOf(chatId, 'all')).map((m) => m.seq)).toEqual([1, 2]);
  });

  it('should resume a repeat that answered with a stored reply to that reply, not to the failure before it', async () => {
    await start();
    const chatId = await newChat();
    const baseUrl = await listenOnLoopback(app);
    // The reply is stored, but its store reports a failure (an acknowledgement lost).
    const repository = app.get(ChatRepository);
    const append = repository.appendMessage.bind(repository);
    jest.spyOn(repository, 'appendMessage').mockImplementation(async (...args) => {
      const stored = await append(...args);
      if (stored.role === 'assistant') throw new Error('connection reset');
      return stored;
    });
    const failed = await (
      await EventStreamClient.post(
        `${baseUrl}/chats/${chatId}/messages`,
        { content: 'Once' },
        { 'Idempotency-Key': 'k' },
      )
    ).all();
    expect(failed.at(-1)!.event).toBe('error');
    jest.mocked(repository.appendMessage).mockRestore();

    const repeat = (await send(chatId, 'Once', 'k').expect(201)).body as TurnDto;
    const resumed = await (
      await EventStreamClient.get(`${baseUrl}/chats/${chatId}/stream`, { 'Last-Event-ID': failed[0].id! })
    ).all();
    expect(resumed.map((e) => [e.event, e.data])).toEqual([['assistant_message', repeat.assistantMessage]]);
    expect(llm.calls).toHaveLength(1);
  });

  it('should answer 409 to a repeat while the first is still running, then its outcome', async () => {
    await start();
    const chatId = await newChat();
    const [called, gate] = [deferred(), deferred()];
    llm.respond = async (req) => {
      called.resolve();
      await gate.promise;
      return echoReply(req);
    };
    const first = send(chatId, 'Slow one', 'turn-r').then((response) => response);
    await called.promise;

    const conflict = await send(chatId, 'Slow one', 'turn-r').expect(409);
    expect(conflict.headers['retry-after']).toBe('1');
    expect(conflict.body).toMatchObject({ type: 'urn:konko:problem:idempotency-key-in-use', status: 409 });
    await send(chatId, 'Another body', 'turn-r').expect(422);

    gate.resolve();
    const firstTurn = (await first).body as TurnDto;
    expect((await send(chatId, 'Slow one', 'turn-r').expect(201)).body).toEqual(firstTurn);
    expect(llm.calls).toHaveLength(1);
  });

  it('should scope keys to the chat', async () => {
    await start();
    const [a, b] = [await newChat(), await newChat()];
    const inA = (await send(a, 'Same words', 'shared').expect(201)).body as TurnDto;
    const inB = (await send(b, 'Same words', 'shared').expect(201)).body as TurnDto;
    expect(inB.userMessage.chatId).toBe(b);
    expect(inB.userMessage.id).not.toBe(inA.userMessage.id);
    expect(llm.calls).toHaveLength(2);
  });

  it('should forget keys after IDEMPOTENCY_TTL', async () => {
    await start({ IDEMPOTENCY_TTL: '1h' });
    const chatId = await newChat();
    await send(chatId, 'Hi', 'turn-t').expect(201);
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now + 59 * 60_000);
    await send(chatId, 'Hi', 'turn-t').expect(201);
    expect(llm.calls).toHaveLength(1);
    jest.spyOn(Date, 'now').mockReturnValue(now + 61 * 60_000);
    const fresh = await send(chatId, 'Hi', 'turn-t').expect(201);
    expect(fresh.headers['idempotent-replayed']).toBeUndefined();
    expect(llm.calls).toHaveLength(2);
    expect((await messagesOf(chatId)).map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  it.each([
    ['too long', 'k'.repeat(256)],
    ['not printable ASCII', 'ключ'],
  ])('should refuse a key that is %s with a 422 naming the header', async (_case, key) => {
    await start();
    const chatId = await newChat();
    const response = await http()
      .post(`/chats/${chatId}/messages`)
      .set('Idempotency-Key', encodeURIComponent(key) === key ? key : Buffer.from(key).toString('latin1'))
      .send({ content: 'x' })
      .expect(422);
    expect(response.body.errors).toEqual([{ field: 'Idempotency-Key', message: expect.any(String) }]);
    expect(llm.calls).toHaveLength(0);
  });

  it('should refuse a key sent more than once with a 422 naming the header, and keep nothing under it', async () => {
    await start();
    const chatId = await newChat();
    const baseUrl = await listenOnLoopback(app);
    // Each key a header line of its own, which supertest cannot send.
    const postWithKeys = (path: string, keys: string[], body: object) =>
      new Promise<{ status: number; body: { errors?: unknown } }>((resolve, reject) => {
        const req = httpRequest(`${baseUrl}${path}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'Idempotency-Key': keys },
        });
        req.on('error', reject).on('response', async (response) => {
          let text = '';
          for await (const chunk of response) text += chunk;
          resolve({ status: response.statusCode!, body: JSON.parse(text) });
        });
        req.end(JSON.stringify(body));
      });

    for (const [path, keys] of [
      [`/chats/${chatId}/messages`, ['a', 'b']],
      ['/chats', ['a', 'a']],
    ] as const) {
      const response = await postWithKeys(path, [...keys], { content: 'x' });
      expect(response).toEqual({
        status: 422,
        body: expect.objectContaining({ errors: [{ field: 'Idempotency-Key', message: 'send the header once' }] }),
      });
    }
    expect(llm.calls).toHaveLength(0);
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);
    // "a, b", the two keys as Node joins them, is a key of its own with nothing kept under it.
    const joined = await send(chatId, 'x', 'a, b').expect(201);
    expect(joined.headers['idempotent-replayed']).toBeUndefined();
    expect(llm.calls).toHaveLength(1);
  });
});
