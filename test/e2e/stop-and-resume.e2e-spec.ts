import { NestExpressApplication } from '@nestjs/platform-express';
import { once } from 'node:events';
import { ServerResponse } from 'node:http';
import request from 'supertest';
import { ChatRepository } from '../../src/chats/chat.repository';
import { LlmUnavailableError } from '../../src/llm/llm-errors';
import { LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';
import { MessageDto, TurnDto } from '../../src/messages/dto/message.dto';
import { deferred } from '../support/deferred';
import { EventStreamClient, ReceivedEvent } from '../support/event-stream-client';
import { FakeOpenAiServer } from '../support/fake-openai-server';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';
import { until } from '../support/until';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];

/** Settles when the request's signal aborts, as an upstream call that is cut off would. */
const untilAborted = (request: LlmRequest) =>
  new Promise<never>((_resolve, reject) =>
    request.signal!.addEventListener('abort', () => reject(request.signal!.reason)),
  );

describe.each(storages)('Stopping and resuming turns on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  let llm: RecordingLlmProvider;
  let baseUrl: string;
  let chatId: string;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    database = createDatabase ? await createDatabase() : undefined;
    app = await createTestApp({ llm, env: database ? { DATABASE_URL: database.url } : {} });
    baseUrl = await listenOnLoopback(app);
    chatId = (await http().post('/chats').expect(201)).body.id;
  });
  afterEach(async () => {
    app.getHttpServer().closeAllConnections();
    await app.close();
    await database?.drop();
  });

  /**
   * The upstream sends `pieces`, then waits for `gate` (or an abort) before it finishes. `called`
   * resolves once the first call has reached it.
   */
  const replyHeldAfter = (pieces: string[]) => {
    const gate = deferred();
    const called = deferred();
    const upstream: { signal?: AbortSignal } = {};
    llm.respond = (req) =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        upstream.signal = req.signal;
        called.resolve();
        for (const content of pieces) yield { type: 'delta', content };
        await Promise.race([gate.promise, untilAborted(req)]);
        yield { type: 'delta', content: ' and the end.' };
        yield { type: 'finish', model: 'fake-model', usage: null };
      })();
    return { gate, called, upstream };
  };
  const send = (content: string) => EventStreamClient.post(`${baseUrl}/chats/${chatId}/messages`, { content });
  const resume = (headers: Record<string, string> = {}, query = '') =>
    EventStreamClient.get(`${baseUrl}/chats/${chatId}/stream${query}`, headers);
  const stored = async () =>
    (await http().get(`/chats/${chatId}/messages?branch=all`).expect(200)).body.data as MessageDto[];
  const turnsInFlight = async () =>
    Number(/^chat_turns_in_flight (\d+)$/m.exec((await http().get('/metrics').expect(200)).text)?.[1]);
  /** Resolves once the server has seen the connection of the next request close. */
  const nextRequestClosed = () =>
    new Promise<void>((resolve) =>
      app.getHttpServer().once('request', (_req: unknown, res: ServerResponse) => res.once('close', resolve)),
    );
  const deltasOf = (events: ReceivedEvent[]) =>
    events
      .filter((e) => e.event === 'delta')
      .map((e) => e.data.content as string)
      .join('');

  it('should go on with a turn whose client left, and store its reply whole', async () => {
    const { gate } = replyHeldAfter(['Once upon ', 'a time']);
    const serverSawLeave = nextRequestClosed();
    const client = await send('Tell me a story');
    await client.waitForEvents(3);
    client.disconnect();
    // The reply goes on only once the service knows the client left: a turn stopped then would end short.
    await serverSawLeave;
    gate.resolve();

    const next = (await http().post(`/chats/${chatId}/messages`).send({ content: 'And then?' }).expect(201))
      .body as TurnDto;
    const [, reply] = await stored();
    expect(reply).toMatchObject({ status: 'completed', content: 'Once upon a time and the end.' });
    expect(next.userMessage.parentId).toBe(reply.id);
  });

  it("should stop a deleted chat's running turn at once, ending its stream with chat-not-found", async () => {
    const { upstream } = replyHeldAfter(['Once upon ']);
    const client = await send('Tell me a story');
    await client.waitForEvents(2);
    await http().delete(`/chats/${chatId}`).expect(204);

    const events = await client.all();
    expect(upstream.signal!.aborted).toBe(true);
    expect(events.map((e) => e.event)).toEqual(['user_message', 'delta', 'error']);
    expect(events[2].data).toMatchObject({ status: 404, type: 'urn:konko:problem:chat-not-found' });
    await http().post(`/chats/${chatId}/stop`).expect(404);
  });

  it('should go on with a plain turn whose client left', async () => {
    const { gate, called } = replyHeldAfter(['Plain ']);
    const serverSawLeave = nextRequestClosed();
    const controller = new AbortController();
    const plain = fetch(`${baseUrl}/chats/${chatId}/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'Hello' }),
      signal: controller.signal,
    }).catch(() => undefined);
    await called.promise;
    controller.abort();
    await plain;
    const resumed = await resume();
    await serverSawLeave;
    gate.resolve();
    const events = await resumed.all();
    expect(events.at(-1)).toMatchObject({ event: 'assistant_message', data: { status: 'completed' } });
    expect((await stored()).map((m) => m.content)).toEqual(['Hello', 'Plain  and the end.']);
  });

  it('should give every event an id and resume after the last one seen, joining to the stored reply exactly', async () => {
    const { gate } = replyHeldAfter(['One, ', 'two, ', 'three']);
    const client = await send('Count');
    // What the client saw before it lost the connection.
    const seen = (await client.waitForEvents(3)).slice(0, 3);
    client.disconnect();
    expect(seen.every((e) => typeof e.id === 'string' && e.id.length > 0)).toBe(true);
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length);

    const resumed = await resume({ 'Last-Event-ID': seen[2].id! });
    await resumed.waitForEvents(1);
    gate.resolve();
    const rest = await resumed.all();

    expect(resumed.response.status).toBe(200);
    expect(rest[0].data).toEqual({ content: 'three' });
    const [, reply] = await stored();
    expect(deltasOf(seen) + deltasOf(rest)).toBe(reply.content);
    expect(rest.at(-1)).toEqual({ event: 'assistant_message', data: reply, id: expect.any(String) });
    expect(new Set([...seen, ...rest].map((e) => e.id)).size).toBe(seen.length + rest.length);
  });

  it('should send every event of the running turn to a resume without an id, then follow it live', async () => {
    const { gate } = replyHeldAfter(['Hello ', 'there']);
    const client = await send('Hi');
    const seen = (await client.waitForEvents(3)).slice(0, 3);
    const resumed = await resume();
    await resumed.waitForEvents(3);
    gate.resolve();
    const all = await resumed.all();
    expect(all.slice(0, 3)).toEqual(seen.slice(0, 3));
    expect(all).toEqual(await client.all());
  });

  it('should answer a resume of an ended turn with its final event only, by header or query', async () => {
    const client = await send('Quick one');
    const events = await client.all();
    for (const id of [events[1].id!, events.at(-1)!.id!]) {
      const byHeader = await (await resume({ 'Last-Event-ID': id })).all();
      const byQuery = await (await resume({}, `?lastEventId=${encodeURIComponent(id)}`)).all();
      expect(byHeader.map((e) => [e.event, e.data])).toEqual([['assistant_message', events.at(-1)!.data]]);
      expect(byQuery).toEqual(byHeader);
      // Its place among the turn's events is not told again: the id ends the turn, and resumes it as well.
      expect(byHeader[0].id).toBe(`${events[0].data.id}.${events.at(-1)!.data.id}.end`);
      expect(await (await resume({ 'Last-Event-ID': byHeader[0].id! })).all()).toEqual(byHeader);
    }
  });

  it('should answer a resume of a failed turn with its error event', async () => {
    llm.respond = () => {
      throw new LlmUnavailableError('The language model answered HTTP 503.');
    };
    const events = await (await send('Fail please')).all();
    expect(events.at(-1)!.event).toBe('error');
    const resumed = await (await resume({ 'Last-Event-ID': events[0].id! })).all();
    // The same problem; its `instance` is the request that reports it.
    const { instance: _sent, ...problem } = events.at(-1)!.data;
    expect(resumed.map((e) => [e.event, e.data])).toEqual([
      ['error', { ...problem, instance: `/chats/${chatId}/stream` }],
    ]);
  });

  it('should answer a resume of a turn that failed midway with its error, and of a stopped one with its reply', async () => {
    llm.respond = () =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Half of it' };
        throw new LlmUnavailableError('The language model answered HTTP 503.');
      })();
    const failed = await (await send('Fail midway')).all();
    expect(failed.map((e) => e.event)).toEqual(['user_message', 'delta', 'error']);
    const { instance: _sent, ...problem } = failed.at(-1)!.data;
    expect(problem.assistantMessage).toMatchObject({ status: 'incomplete', content: 'Half of it' });
    const resumed = await (await resume({ 'Last-Event-ID': failed[1].id! })).all();
    expect(resumed.map((e) => [e.event, e.data])).toEqual([
      ['error', { ...problem, instance: `/chats/${chatId}/stream` }],
    ]);

    // A stopped turn stores what it had as incomplete too, and ends with it as its reply.
    replyHeldAfter(['Partial']);
    const client = await send('Go on');
    const seen = await client.waitForEvents(2);
    await http().post(`/chats/${chatId}/stop`).expect(202);
    const stopped = await client.all();
    expect(stopped.at(-1)).toMatchObject({ event: 'assistant_message', data: { status: 'incomplete' } });
    const resumedStop = await (await resume({ 'Last-Event-ID': seen[1].id! })).all();
    expect(resumedStop.map((e) => [e.event, e.data])).toEqual([['assistant_message', stopped.at(-1)!.data]]);
  });

  it('should answer 204 with nothing to resume, 422 for an id it did not give out, 404 for an unknown chat', async () => {
    await http().get(`/chats/${chatId}/stream`).expect(204);
    for (const id of ['nope', `${crypto.randomUUID()}.${crypto.randomUUID()}.0`, '-.x.1']) {
      const response = await http().get(`/chats/${chatId}/stream`).set('Last-Event-ID', id).expect(422);
      expect(response.body.errors).toEqual([{ field: 'Last-Event-ID', message: expect.any(String) }]);
    }
    const query = await http().get(`/chats/${chatId}/stream?lastEventId=garbage`).expect(422);
    expect(query.body.errors[0].field).toBe('lastEventId');
    // An id of another chat's turn is not one given out for this chat.
    const otherChat = (await http().post('/chats').expect(201)).body.id;
    const other = await (
      await EventStreamClient.post(`${baseUrl}/chats/${otherChat}/messages`, { content: 'elsewhere' })
    ).all();
    await http().get(`/chats/${chatId}/stream`).set('Last-Event-ID', other[0].id!).expect(422);
    await http().get(`/chats/${crypto.randomUUID()}/stream`).expect(404);
    await http().post(`/chats/${crypto.randomUUID()}/stop`).expect(404);
  });

  it('should answer 422 for a place past the events the running turn has sent, and follow from its last', async () => {
    const { gate } = replyHeldAfter(['Once upon ', 'a time']);
    const client = await send('Tell me a story');
    const sent = [...(await client.waitForEvents(3))];
    client.disconnect();
    const last = sent[2].id!;
    const past = last.replace(/\.2$/, '.3');
    expect(past).not.toBe(last);

    const refused = await http().get(`/chats/${chatId}/stream`).set('Last-Event-ID', past).expect(422);
    expect(refused.body.errors).toEqual([{ field: 'Last-Event-ID', message: expect.any(String) }]);
    await http().get(`/chats/${chatId}/stream?lastEventId=${past}`).expect(422);
    const resumed = await resume({ 'Last-Event-ID': last });
    gate.resolve();
    const rest = await resumed.all();
    expect(deltasOf([...sent, ...rest])).toBe((await stored())[1].content);
  });

  it('should answer 422 for an id that names no turn of the chat, though it is well-formed', async () => {
    const [first, second] = [await (await send('One')).all(), await (await send('Two')).all()];
    const [userMessage, otherReply] = [first[0].data as MessageDto, second.at(-1)!.data as MessageDto];
    // A turn that fails before it stores its user message has nothing but its failure to name it by.
    const append = jest.spyOn(app.get(ChatRepository), 'appendMessageWithChat');
    append.mockRejectedValueOnce(new Error('disk full'));
    const unnamed = await (await send('Lost')).all();
    append.mockRestore();
    const unnamedId = unnamed.at(-1)!.id!;
    expect(unnamedId).toMatch(/^-\./);
    const resumed = await (await resume({ 'Last-Event-ID': unnamedId })).all();
    expect(resumed.map((e) => [e.event, e.data.status])).toEqual([['error', 500]]);

    const otherChat = (await http().post('/chats').expect(201)).body.id;
    const responses = [];
    for (const [chat, id] of [
      [chatId, `-.${crypto.randomUUID()}.0`],
      [otherChat, unnamedId],
      // A completed turn's user message, with a reply id it never had, or another message's reply.
      [chatId, `${userMessage.id}.${crypto.randomUUID()}.3`],
      [chatId, `${userMessage.id}.00000000-0000-7000-8000-000000000000.3`],
      [chatId, `${userMessage.id}.${otherReply.id}.1`],
    ]) {
      responses.push(await http().get(`/chats/${chat}/stream`).set('Last-Event-ID', id));
    }
    expect(responses.map((r) => r.status)).toEqual([422, 422, 422, 422, 422]);
    for (const response of responses) {
      expect(response.body.errors).toEqual([{ field: 'Last-Event-ID', message: expect.any(String) }]);
    }
  });

  it('should stop a streamed turn: the upstream aborted, the partial reply stored incomplete and sent last', async () => {
    const { upstream } = replyHeldAfter(['Partial ', 'answer']);
    const client = await send('Go on and on');
    await client.waitForEvents(3);
    const follower = await resume();
    await follower.waitForEvents(3);

    await http().post(`/chats/${chatId}/stop`).expect(202);
    const events = await client.all();

    expect(upstream.signal?.aborted).toBe(true);
    const [, reply] = await stored();
    expect(reply).toMatchObject({ status: 'incomplete', content: 'Partial answer' });
    expect(events.at(-1)).toEqual({ event: 'assistant_message', data: reply, id: expect.any(String) });
    expect((await follower.all()).at(-1)!.data).toEqual(reply);
    await http().post(`/chats/${chatId}/stop`).expect(204);
  });

  it('should answer a waiting plain request 201 with the stopped reply, and run the turns that wait', async () => {
    const { gate, called } = replyHeldAfter([]);
    // supertest sends on then(): 'Slow' holds the chat before 'Next' is sent, and 'Next' waits for it.
    const running = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content: 'Slow' })
      .then((r) => r);
    await called.promise;
    const next = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content: 'Next' })
      .then((r) => r);
    await until(async () => (await turnsInFlight()) >= 2, "'Next' to wait for the chat (chat_turns_in_flight 2)");
    await http().post(`/chats/${chatId}/stop`).expect(202);
    gate.resolve();

    const stopped = await running;
    expect(stopped.status).toBe(201);
    expect(stopped.body.assistantMessage).toMatchObject({ status: 'incomplete', content: '' });
    expect((await next).status).toBe(201);
    expect((await next).body.assistantMessage).toMatchObject({ status: 'completed' });
  });
});

/** LLM_MAX_CONCURRENCY=1 through the real provider: a turn of another chat waits for the one slot. */
describe('Stopping a turn that waits for an LLM slot (e2e)', () => {
  let upstream: FakeOpenAiServer;
  let app: NestExpressApplication;
  let baseUrl: string;
  const http = () => request(app.getHttpServer());
  const newChat = async () => (await http().post('/chats').expect(201)).body.id as string;
  const stored = async (chatId: string) =>
    (await http().get(`/chats/${chatId}/messages?branch=all`).expect(200)).body.data as MessageDto[];

  beforeEach(async () => {
    upstream = await new FakeOpenAiServer().start();
    app = await createTestApp({
      env: { OPENAI_BASE_URL: upstream.baseUrl, LLM_MAX_RETRIES: '0', LLM_MAX_CONCURRENCY: '1', AUTO_TITLE: 'off' },
    });
    baseUrl = await listenOnLoopback(app);
  });
  afterEach(async () => {
    app.getHttpServer().closeAllConnections();
    await app.close();
    await upstream.close();
  });

  it('should stop it at once while the other call holds the slot, and leave the slot to later turns', async () => {
    const [slow, queued] = [await newChat(), await newChat()];
    upstream.enqueue({ kind: 'reply', pieces: ['Slow ', 'answer'], holdAfter: 1 });
    const held = once(upstream, 'held');
    const holding = await EventStreamClient.post(`${baseUrl}/chats/${slow}/messages`, { content: 'Take your time' });
    await held;
    const waiting = await EventStreamClient.post(`${baseUrl}/chats/${queued}/messages`, { content: 'Me next' });
    await waiting.waitForEvents(1);

    await http().post(`/chats/${queued}/stop`).expect(202);
    const stopped = await waiting.all();

    // Ended while the slow call still holds the slot: it never reached the upstream.
    expect(upstream.requests).toHaveLength(1);
    const [, reply] = await stored(queued);
    expect(reply).toMatchObject({ role: 'assistant', status: 'incomplete', content: '' });
    expect(stopped.map((e) => e.event)).toEqual(['user_message', 'assistant_message']);
    expect(stopped.at(-1)!.data).toEqual(reply);
    await http().post(`/chats/${queued}/stop`).expect(204);

    upstream.release();
    expect((await holding.all()).at(-1)).toMatchObject({
      event: 'assistant_message',
      data: { status: 'completed', content: 'Slow answer' },
    });
    const later = await http().post(`/chats/${queued}/messages`).send({ content: 'Again' }).expect(201);
    expect(later.body.assistantMessage).toMatchObject({ status: 'completed', content: 'reply to: Again' });
    expect(upstream.requests).toHaveLength(2);
  });
});
