import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { FakeBehaviour, FakeOpenAiServer } from '../support/fake-openai-server';
import { createTestApp } from '../support/test-app';

describe('Upstream failures (e2e)', () => {
  let server: FakeOpenAiServer;
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());
  const newChat = async (body: object = {}) => (await http().post('/chats').send(body).expect(201)).body;
  const send = (chatId: string, content: string) => http().post(`/chats/${chatId}/messages`).send({ content });

  beforeEach(async () => {
    server = await new FakeOpenAiServer().start();
    app = await createTestApp({
      env: {
        OPENAI_BASE_URL: server.baseUrl,
        OPENAI_API_KEY: 'test-key',
        LLM_MAX_RETRIES: '0',
        LLM_TIMEOUT_MS: '300',
      },
    });
  });
  afterEach(async () => {
    await app.close();
    await server.close();
  });

  it('should answer 201 with the upstream reply and store its model and usage', async () => {
    server.enqueue({
      kind: 'reply',
      content: 'Belém, then Alfama.',
      model: 'gpt-4.1-mini-2025-04-14',
      usage: { prompt_tokens: 31, completion_tokens: 7 },
    });
    const chat = await newChat({ systemPrompt: 'You are terse.' });

    const response = await send(chat.id, 'Lisbon in one day?').expect(201);

    expect(response.body.assistantMessage).toMatchObject({
      seq: 2,
      role: 'assistant',
      content: 'Belém, then Alfama.',
      model: 'gpt-4.1-mini-2025-04-14',
      usage: { promptTokens: 31, completionTokens: 7 },
      inReplyTo: response.body.userMessage.id,
    });
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0].headers.authorization).toBe('Bearer test-key');
    expect(server.requests[0].body).toMatchObject({
      model: chat.model,
      max_tokens: 1024,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Lisbon in one day?' },
      ],
    });
    const stored = (await http().get(`/chats/${chat.id}/messages`).expect(200)).body;
    expect(stored.data).toEqual([response.body.userMessage, response.body.assistantMessage]);
  });

  it('should answer 201 with the reply of an upstream that ignores stream: true and sends it whole', async () => {
    server.enqueue({ kind: 'reply', content: 'Belém, then Alfama.', ignoreStream: true });
    const chat = await newChat();

    const response = await send(chat.id, 'Lisbon in one day?').expect(201);

    expect(response.body.assistantMessage).toMatchObject({ content: 'Belém, then Alfama.', status: 'completed' });
  });

  it('should answer 201 with the reply stored incomplete when the upstream cuts it at its token limit', async () => {
    server.enqueue({ kind: 'reply', content: 'Start at Belém, then', finishReason: 'length' });
    const chat = await newChat();

    const response = await send(chat.id, 'Lisbon in one day?').expect(201);

    expect(response.body.assistantMessage).toMatchObject({ content: 'Start at Belém, then', status: 'incomplete' });
    const stored = (await http().get(`/chats/${chat.id}/messages`).expect(200)).body;
    expect(stored.data[1]).toEqual(response.body.assistantMessage);
  });

  it.each([
    ['is cut after [DONE]', { afterDone: 'cut' }],
    ['goes silent after [DONE]', { afterDone: 'stall' }],
    ['is cut after the finish reason, before the usage', { afterFinish: 'cut' }],
    ['goes silent after the finish reason, before the usage', { afterFinish: 'stall' }],
  ] as const)('should answer 201 with the whole reply when the upstream connection %s', async (_case, after) => {
    server.enqueue({ kind: 'reply', pieces: ['Belém,', ' then Alfama.'], ...after });
    const chat = await newChat();

    const response = await send(chat.id, 'Lisbon in one day?').expect(201);

    expect(response.body.assistantMessage).toMatchObject({ content: 'Belém, then Alfama.', status: 'completed' });
  });

  it('should answer 502 with the partial reply stored incomplete when the upstream body ends before the reply', async () => {
    server.enqueue({ kind: 'end-mid-stream', pieces: ['Start at', ' Belém,'] });
    const chat = await newChat();

    const failure = await send(chat.id, 'Lisbon in one day?').expect(502);

    expect(failure.body).toMatchObject({
      type: 'urn:konko:problem:llm-failed',
      userMessage: { seq: 1, content: 'Lisbon in one day?' },
      assistantMessage: { seq: 2, content: 'Start at Belém,', status: 'incomplete' },
    });
    const stored = (await http().get(`/chats/${chat.id}/messages`).expect(200)).body;
    expect(stored.data).toEqual([failure.body.userMessage, failure.body.assistantMessage]);
  });

  it.each<{ upstream: string; behaviour: FakeBehaviour; status: number; type: string; retryAfter?: string }>([
    { upstream: 'HTTP 500', behaviour: { kind: 'error', status: 500 }, status: 502, type: 'llm-failed' },
    {
      upstream: 'HTTP 429 with Retry-After: 7',
      behaviour: { kind: 'error', status: 429, headers: { 'retry-after': '7' } },
      status: 503,
      type: 'llm-unavailable',
      retryAfter: '7',
    },
    {
      upstream: 'HTTP 429 with only retry-after-ms: 2500',
      behaviour: { kind: 'error', status: 429, headers: { 'retry-after-ms': '2500' } },
      status: 503,
      type: 'llm-unavailable',
      retryAfter: '3',
    },
    {
      upstream: 'HTTP 429 with a Retry-After that is no time, and retry-after-ms: 1200',
      behaviour: { kind: 'error', status: 429, headers: { 'retry-after': 'soon', 'retry-after-ms': '1200' } },
      status: 503,
      type: 'llm-unavailable',
      retryAfter: '2',
    },
    { upstream: 'no answer', behaviour: { kind: 'hang' }, status: 504, type: 'llm-timeout' },
    { upstream: 'a body stalled after the headers', behaviour: { kind: 'stall' }, status: 504, type: 'llm-timeout' },
    { upstream: 'a body that is not JSON', behaviour: { kind: 'malformed' }, status: 502, type: 'llm-failed' },
  ])(
    'should answer $status $type for $upstream, keep the user message and serve the next turn',
    async ({ behaviour, status, type, retryAfter }) => {
      server.enqueue(behaviour);
      const chat = await newChat();

      const failure = await send(chat.id, 'Are you there?').expect(status);

      expect(failure.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(failure.headers['retry-after']).toBe(retryAfter);
      expect(failure.body).toMatchObject({
        type: `urn:konko:problem:${type}`,
        status,
        userMessage: { chatId: chat.id, seq: 1, role: 'user', content: 'Are you there?' },
      });
      const stored = (await http().get(`/chats/${chat.id}/messages`).expect(200)).body;
      expect(stored.data).toEqual([failure.body.userMessage]);

      const next = await send(chat.id, 'Now?').expect(201);

      expect(next.body.userMessage.seq).toBe(2);
      expect(next.body.assistantMessage).toMatchObject({ seq: 3, content: 'reply to: Now?' });
      expect(server.requests).toHaveLength(2);
      expect(server.requests[1].body?.messages?.slice(1)).toEqual([
        { role: 'user', content: 'Are you there?' },
        { role: 'user', content: 'Now?' },
      ]);
    },
  );
});
