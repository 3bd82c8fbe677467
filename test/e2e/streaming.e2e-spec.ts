import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { LlmUpstreamError } from '../../src/llm/llm-errors';
import { LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';
import { EventStreamClient } from '../support/event-stream-client';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';

/** Rejects when the request's signal aborts, as a real upstream call does. */
function untilAborted(req: LlmRequest): Promise<never> {
  return new Promise((_resolve, reject) => {
    const signal = req.signal!;
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

describe('Streamed replies (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  let baseUrl: string;
  let chatId: string;
  const http = () => request(app.getHttpServer());
  const stream = (content: string, headers?: Record<string, string>, path = `/chats/${chatId}/messages`) =>
    EventStreamClient.post(`${baseUrl}${path}`, { content }, headers);
  const storedMessages = async () => (await http().get(`/chats/${chatId}/messages`).expect(200)).body.data;

  const start = async (env: Record<string, string> = {}) => {
    app = await createTestApp({ llm, env: { SSE_PING_INTERVAL_MS: '20', ...env } });
    baseUrl = await listenOnLoopback(app);
    chatId = (await http().post('/chats').expect(201)).body.id;
  };
  /** The behaviour before turns outlived their connections: a client that leaves stops its turn. */
  const restartStoppingWhenClientsLeave = async () => {
    app.getHttpServer().closeAllConnections();
    await app.close();
    await start({ CLIENT_DISCONNECT: 'stop' });
  };

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    await start();
  });
  afterEach(async () => {
    // fetch may leave a pre-opened connection that never sends a request; don't wait for its timeout.
    app.getHttpServer().closeAllConnections();
    await app.close();
  });

  it('should stream user_message, the deltas in order, then the stored assistant_message', async () => {
    const client = await stream('Tell me a story');
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get('content-type')).toMatch(/^text\/event-stream/);

    const events = await client.all();
    const names = events.map((e) => e.event);
    expect(names[0]).toBe('user_message');
    expect(names[names.length - 1]).toBe('assistant_message');
    expect(names.slice(1, -1).every((name) => name === 'delta')).toBe(true);
    expect(names.length).toBeGreaterThan(3);

    const deltas = events.filter((e) => e.event === 'delta').map((e) => e.data.content as string);
    expect(deltas.join('')).toBe('reply to: Tell me a story');
    const [user, assistant] = await storedMessages();
    expect(events[0].data).toEqual(user);
    expect(events[events.length - 1].data).toEqual(assistant);
    expect(assistant).toMatchObject({ content: deltas.join(''), status: 'completed', inReplyTo: user.id });
  });

  it('should stream for ?stream=true and answer plain JSON for ?stream=false', async () => {
    const client = await EventStreamClient.post(
      `${baseUrl}/chats/${chatId}/messages?stream=true`,
      { content: 'a' },
      {
        Accept: '*/*',
      },
    );
    expect(client.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect((await client.all()).map((e) => e.event)).toContain('assistant_message');

    const plain = await http()
      .post(`/chats/${chatId}/messages?stream=false`)
      .set('Accept', 'text/event-stream')
      .send({ content: 'b' })
      .expect(201);
    expect(plain.body.assistantMessage.content).toBe('reply to: b');
    await http().post(`/chats/${chatId}/messages?stream=maybe`).send({ content: 'c' }).expect(422);
  });

  it('should answer errors known before the turn as plain problems, not streams', async () => {
    const missing = await stream('hi', {}, '/chats/0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e/messages');
    expect(missing.response.status).toBe(404);
    expect(missing.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const blank = await stream('   ');
    expect(blank.response.status).toBe(422);
    expect(blank.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(llm.calls).toHaveLength(0);
  });

  it('should ping while the turn waits for the first token', async () => {
    let pinged!: () => void;
    const clientSawPing = new Promise<void>((resolve) => (pinged = resolve));
    llm.respond = async (req) => {
      await clientSawPing;
      return echoReply(req);
    };
    const client = await stream('slow one');
    await client.waitForEvents(1);
    expect(await client.waitForComment()).toBe('ping');
    pinged();
    expect((await client.all()).map((e) => e.event).pop()).toBe('assistant_message');
  });

  it('should abort the upstream call when the client leaves, keep the partial reply and free the chat (CLIENT_DISCONNECT=stop)', async () => {
    await restartStoppingWhenClientsLeave();
    let upstreamSignal: AbortSignal | undefined;
    llm.respond = (req) =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        upstreamSignal = req.signal;
        yield { type: 'delta', content: 'Once upon ' };
        yield { type: 'delta', content: 'a time' };
        await untilAborted(req);
      })();
    const client = await stream('Tell me a long story');
    await client.waitForEvents(3);
    client.disconnect();

    llm.respond = echoReply;
    const next = await http().post(`/chats/${chatId}/messages`).send({ content: 'Are you there?' }).expect(201);

    expect(upstreamSignal?.aborted).toBe(true);
    const messages = await storedMessages();
    expect(messages.map((m: { role: string; status: string }) => `${m.role}:${m.status}`)).toEqual([
      'user:completed',
      'assistant:incomplete',
      'user:completed',
      'assistant:completed',
    ]);
    expect(messages[1]).toMatchObject({ content: 'Once upon a time', inReplyTo: messages[0].id, usage: null });
    expect(next.body.userMessage.seq).toBe(3);
    // The incomplete reply is part of the next turn's context.
    expect(llm.calls[1].request.messages.slice(1)).toEqual([
      { role: 'user', content: 'Tell me a long story' },
      { role: 'assistant', content: 'Once upon a time' },
      { role: 'user', content: 'Are you there?' },
    ]);
  });

  it('should store nothing for a client that leaves while its turn still waits for the chat (CLIENT_DISCONNECT=stop)', async () => {
    await restartStoppingWhenClientsLeave();
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    llm.respond = async (req, call) => {
      if (call === 1) await firstHeld;
      return echoReply(req);
    };
    const first = await stream('first');
    await first.waitForEvents(1);
    const serverSawLeave = new Promise<void>((resolve) =>
      app.getHttpServer().once('request', (_req: unknown, res: NodeJS.EventEmitter) => res.once('close', resolve)),
    );
    const waiting = await stream('second, abandoned');
    await waiting.waitForComment();
    waiting.disconnect();
    await serverSawLeave;
    releaseFirst();
    await first.all();
    const third = await http().post(`/chats/${chatId}/messages`).send({ content: 'third' }).expect(201);

    expect(third.body.userMessage.seq).toBe(3);
    expect((await storedMessages()).map((m: { content: string }) => m.content)).not.toContain('second, abandoned');
  });

  it('should end with an error event and keep the partial reply when the upstream breaks mid-stream', async () => {
    llm.respond = () =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'The answer is ' };
        throw new LlmUpstreamError('The language model stream broke.');
      })();
    const events = await (await stream('What is it?')).all();

    expect(events.map((e) => e.event)).toEqual(['user_message', 'delta', 'error']);
    const problem = events[2].data;
    expect(problem).toMatchObject({
      type: 'urn:konko:problem:llm-failed',
      status: 502,
      userMessage: { seq: 1, content: 'What is it?' },
      assistantMessage: { seq: 2, status: 'incomplete', content: 'The answer is ' },
    });
    const messages = await storedMessages();
    expect(messages[1]).toEqual(problem.assistantMessage);

    llm.respond = echoReply;
    await http().post(`/chats/${chatId}/messages`).send({ content: 'again' }).expect(201);
  });

  it('should answer a plain turn whose upstream breaks mid-way with 502 and the partial reply', async () => {
    llm.respond = () =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Half' };
        throw new LlmUpstreamError('The language model stream broke.');
      })();
    const response = await http().post(`/chats/${chatId}/messages`).send({ content: 'q' }).expect(502);
    expect(response.body.assistantMessage).toMatchObject({ content: 'Half', status: 'incomplete' });
  });

  it('should serialize a streamed turn and a plain turn sent together to one chat', async () => {
    let bothArrived!: () => void;
    const arrived = new Promise<void>((resolve) => (bothArrived = resolve));
    let seen = 0;
    app.getHttpServer().on('request', () => {
      seen += 1;
      if (seen === 2) bothArrived();
    });
    llm.respond = async (req, call) => {
      if (call === 1) await arrived;
      return echoReply(req);
    };
    const [streamed, plain] = await Promise.all([
      stream('streamed').then((client) => client.all()),
      http().post(`/chats/${chatId}/messages`).send({ content: 'plain' }),
    ]);

    expect(plain.status).toBe(201);
    expect(streamed.map((e) => e.event).pop()).toBe('assistant_message');
    expect(llm.maxInFlight).toBe(1);
    const messages = await storedMessages();
    expect(messages.map((m: { role: string }) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(messages[1].inReplyTo).toBe(messages[0].id);
    expect(messages[3].inReplyTo).toBe(messages[2].id);
    expect(llm.calls[1].request.messages).toHaveLength(4);
  });
});
