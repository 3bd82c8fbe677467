import { NestExpressApplication } from '@nestjs/platform-express';
import { once } from 'node:events';
import request from 'supertest';
import { EventStreamClient, ReceivedEvent } from '../support/event-stream-client';
import { FakeBehaviour, FakeOpenAiServer, PARTIAL_PIECES } from '../support/fake-openai-server';
import { createTestApp, listenOnLoopback } from '../support/test-app';

/** Streamed turns through the real OpenAI provider and client, against the loopback server. */
describe('Streamed replies from an OpenAI-compatible upstream (e2e)', () => {
  let upstream: FakeOpenAiServer;
  let app: NestExpressApplication;
  let baseUrl: string;
  let chatId: string;
  const http = () => request(app.getHttpServer());
  const stream = (content: string) => EventStreamClient.post(`${baseUrl}/chats/${chatId}/messages`, { content });
  const storedMessages = async () => (await http().get(`/chats/${chatId}/messages`).expect(200)).body.data;

  beforeEach(async () => {
    upstream = await new FakeOpenAiServer().start();
    app = await createTestApp({
      env: { OPENAI_BASE_URL: upstream.baseUrl, LLM_MAX_RETRIES: '0', LLM_TIMEOUT_MS: '2000' },
    });
    baseUrl = await listenOnLoopback(app);
    chatId = (await http().post('/chats').expect(201)).body.id;
  });
  afterEach(async () => {
    app.getHttpServer().closeAllConnections();
    await app.close();
    await upstream.close();
  });

  it('should forward the upstream pieces as deltas and store them joined', async () => {
    upstream.enqueue({
      kind: 'reply',
      pieces: ['Belém', ', then', ' Alfama.'],
      usage: { prompt_tokens: 9, completion_tokens: 4 },
    });
    const events = await (await stream('Lisbon?')).all();

    expect(events.map((e) => e.event)).toEqual(['user_message', 'delta', 'delta', 'delta', 'assistant_message']);
    expect(events.slice(1, 4).map((e) => e.data.content)).toEqual(['Belém', ', then', ' Alfama.']);
    expect(events[4].data).toMatchObject({
      content: 'Belém, then Alfama.',
      usage: { promptTokens: 9, completionTokens: 4 },
    });
    expect(upstream.requests[0].body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  /** Two deltas, then the error event of a 502 that carries the partial reply, stored `incomplete`. */
  async function expectPartialReplyFailed(events: ReceivedEvent[]): Promise<void> {
    expect(events.map((e) => e.event)).toEqual(['user_message', 'delta', 'delta', 'error']);
    expect(events[3].data).toMatchObject({
      status: 502,
      type: 'urn:konko:problem:llm-failed',
      userMessage: { seq: 1 },
      assistantMessage: { seq: 2, status: 'incomplete', content: PARTIAL_PIECES.join('') },
    });
    expect((await storedMessages())[1]).toEqual(events[3].data.assistantMessage);
  }

  it('should end with an error event and keep the partial reply when the upstream connection is cut', async () => {
    upstream.enqueue({ kind: 'cut-mid-stream' });
    await expectPartialReplyFailed(await (await stream('Tell me everything')).all());

    const next = await http().post(`/chats/${chatId}/messages`).send({ content: 'Again?' }).expect(201);
    expect(next.body.userMessage.seq).toBe(3);
  });

  it('should end with an error event and keep the partial reply when the upstream body ends before the reply does', async () => {
    upstream.enqueue({ kind: 'end-mid-stream' });
    await expectPartialReplyFailed(await (await stream('Tell me everything')).all());
  });

  it.each(['length', 'content_filter'])(
    'should store a reply the upstream cut short (finish_reason %s) as incomplete, as it was streamed',
    async (finishReason) => {
      upstream.enqueue({ kind: 'reply', pieces: ['Start at', ' Belém,'], finishReason });
      const events = await (await stream('Lisbon?')).all();

      expect(events.map((e) => e.event)).toEqual(['user_message', 'delta', 'delta', 'assistant_message']);
      expect(events[3].data).toMatchObject({ content: 'Start at Belém,', status: 'incomplete' });
      expect((await storedMessages())[1]).toEqual(events[3].data);
    },
  );

  it('should cancel the upstream request when the client disconnects, and keep what was generated', async () => {
    upstream.enqueue({ kind: 'reply', pieces: ['Once', ' upon', ' a time'], holdAfter: 1 });
    const abandoned = once(upstream, 'abandoned');
    const client = await stream('A story, please');
    await client.waitForEvents(2);
    client.disconnect();

    await abandoned;
    upstream.release();
    await http().post(`/chats/${chatId}/messages`).send({ content: 'Still there?' }).expect(201);
    const messages = await storedMessages();
    expect(messages[1]).toMatchObject({ role: 'assistant', status: 'incomplete', content: 'Once' });
    expect(messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  it.each([
    ['HTTP 500', { kind: 'error', status: 500 }, 502, 'llm-failed'],
    ['HTTP 503', { kind: 'error', status: 503 }, 503, 'llm-unavailable'],
    [
      'HTTP 429 with Retry-After',
      { kind: 'error', status: 429, headers: { 'retry-after': '7' } },
      503,
      'llm-unavailable',
    ],
    ['no answer in time', { kind: 'hang' }, 504, 'llm-timeout'],
    ['a malformed body', { kind: 'malformed' }, 502, 'llm-failed'],
    ['a connection cut before the first byte', { kind: 'cut' }, 503, 'llm-unavailable'],
    ['a stall mid-stream', { kind: 'stall-mid-stream' }, 504, 'llm-timeout'],
  ] as [string, FakeBehaviour, number, string][])(
    'should end the stream with an error event for %s, keep the user message and serve the next turn',
    async (_case, behaviour, status, type) => {
      await app.close();
      app = await createTestApp({
        env: { OPENAI_BASE_URL: upstream.baseUrl, LLM_MAX_RETRIES: '0', LLM_TIMEOUT_MS: '300' },
      });
      baseUrl = await listenOnLoopback(app);
      chatId = (await http().post('/chats').expect(201)).body.id;
      upstream.enqueue(behaviour);

      const events = await (await stream('Are you there?')).all();
      expect(events[0].event).toBe('user_message');
      const last = events[events.length - 1];
      expect(last.event).toBe('error');
      expect(last.data).toMatchObject({ status, type: `urn:konko:problem:${type}`, userMessage: { seq: 1 } });
      if (behaviour.kind === 'error' && behaviour.status === 429) expect(last.data.detail).toContain('429');

      const next = await http().post(`/chats/${chatId}/messages`).send({ content: 'Now?' }).expect(201);
      expect(next.body.assistantMessage.content).toBe('reply to: Now?');
      const stored = await storedMessages();
      expect(stored[0]).toMatchObject({ seq: 1, role: 'user', content: 'Are you there?' });
      expect(stored[stored.length - 1]).toMatchObject({ role: 'assistant', status: 'completed' });
    },
    10_000,
  );

  it('should stream the reply when a retry cures the upstream failure', async () => {
    await app.close();
    app = await createTestApp({ env: { OPENAI_BASE_URL: upstream.baseUrl, LLM_MAX_RETRIES: '1' } });
    baseUrl = await listenOnLoopback(app);
    chatId = (await http().post('/chats').expect(201)).body.id;
    upstream.enqueue(
      { kind: 'error', status: 503, headers: { 'retry-after-ms': '1' } },
      { kind: 'reply', content: 'Back again.' },
    );

    const events = await (await stream('Hello?')).all();
    expect(events[events.length - 1]).toMatchObject({ event: 'assistant_message', data: { content: 'Back again.' } });
    expect(upstream.requests).toHaveLength(2);
  });
});
