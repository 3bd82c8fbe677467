import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { DEFAULT_SYSTEM_PROMPT } from '../../src/config/llm.config';
import { LlmUpstreamError } from '../../src/llm/llm-errors';
import { Page, walkPages } from '../support/pages';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';

describe('Messages (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const newChat = async (body: object = {}) => (await http().post('/chats').send(body).expect(201)).body;
  const send = (chatId: string, content: string) => http().post(`/chats/${chatId}/messages`).send({ content });

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({ llm });
  });
  afterEach(() => app.close());

  it('should store the user message, ask the LLM and store the reply', async () => {
    const chat = await newChat({ systemPrompt: 'You are terse.' });
    const response = await send(chat.id, 'Hello?').expect(201);

    expect(response.body.userMessage).toEqual({
      id: expect.any(String),
      chatId: chat.id,
      seq: 1,
      role: 'user',
      content: 'Hello?',
      status: 'completed',
      inReplyTo: null,
      parentId: null,
      model: null,
      usage: null,
      createdAt: expect.any(String),
    });
    expect(response.body.assistantMessage).toEqual({
      id: expect.any(String),
      chatId: chat.id,
      seq: 2,
      role: 'assistant',
      content: 'reply to: Hello?',
      status: 'completed',
      inReplyTo: response.body.userMessage.id,
      parentId: response.body.userMessage.id,
      model: 'fake-model',
      usage: { promptTokens: 10, completionTokens: 3 },
      createdAt: expect.any(String),
    });
    expect(llm.calls[0].request).toMatchObject({
      model: chat.model,
      maxOutputTokens: 1024,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Hello?' },
      ],
    });
    const stored = (await http().get(`/chats/${chat.id}/messages`).expect(200)).body;
    expect(stored).toEqual({ data: [response.body.userMessage, response.body.assistantMessage], nextCursor: null });
    const after = (await http().get(`/chats/${chat.id}`).expect(200)).body;
    expect(after).toMatchObject({
      messageCount: 2,
      lastMessageAt: response.body.assistantMessage.createdAt,
      currentMessageId: response.body.assistantMessage.id,
    });
  });

  it('should send the whole history, oldest first, and the service default system prompt', async () => {
    const chat = await newChat();
    await send(chat.id, 'one').expect(201);
    await send(chat.id, 'two').expect(201);
    expect(llm.calls[1].request.messages).toEqual([
      { role: 'system', content: DEFAULT_SYSTEM_PROMPT },
      { role: 'user', content: 'one' },
      { role: 'assistant', content: 'reply to: one' },
      { role: 'user', content: 'two' },
    ]);
  });

  it('should use a changed system prompt from the next turn on', async () => {
    const chat = await newChat({ systemPrompt: 'First.' });
    await send(chat.id, 'a').expect(201);
    await http().patch(`/chats/${chat.id}`).send({ systemPrompt: 'Second.' }).expect(200);
    await send(chat.id, 'b').expect(201);
    expect(llm.calls[1].request.messages[0]).toEqual({ role: 'system', content: 'Second.' });
  });

  it('should page messages by seq and walk every page exactly once', async () => {
    const chat = await newChat();
    for (let i = 1; i <= 5; i++) await send(chat.id, `m${i}`).expect(201);
    const page = async (cursor?: string): Promise<Page<{ seq: number }>> =>
      (await http().get(`/chats/${chat.id}/messages`).query({ limit: 3, cursor }).expect(200)).body;
    const messages = await walkPages(await page(), page, 10);
    expect(messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it('should reject message limits outside 1–1000 and cursors of another chat', async () => {
    const [a, b] = [await newChat(), await newChat()];
    await send(a.id, 'x').expect(201);
    for (const limit of ['0', '1001', 'x']) await http().get(`/chats/${a.id}/messages`).query({ limit }).expect(422);
    await http().get(`/chats/${a.id}/messages`).query({ limit: 1000 }).expect(200);
    const cursor = (await http().get(`/chats/${a.id}/messages?limit=1`).expect(200)).body.nextCursor;
    const response = await http().get(`/chats/${b.id}/messages`).query({ cursor }).expect(422);
    expect(response.body.errors[0].field).toBe('cursor');
  });

  it.each([
    ['no body', undefined],
    ['an empty object', {}],
    ['blank content', { content: ' \n\t ' }],
    ['empty content', { content: '' }],
    ['non-string content', { content: 42 }],
    ['content over 32,000 characters', { content: 'x'.repeat(32_001) }],
    ['an unknown field', { content: 'hi', role: 'system' }],
  ])('should reject %s with 422 and store nothing', async (_case, body) => {
    const chat = await newChat();
    const response = await http().post(`/chats/${chat.id}/messages`).send(body).expect(422);
    expect(response.body).toMatchObject({
      status: 422,
      type: 'urn:konko:problem:validation-failed',
      errors: expect.any(Array),
    });
    expect((await http().get(`/chats/${chat.id}`)).body.messageCount).toBe(0);
    expect(llm.calls).toHaveLength(0);
  });

  it('should accept exactly 32,000 characters', async () => {
    const chat = await newChat();
    await send(chat.id, 'é'.repeat(32_000)).expect(201);
  });

  it('should answer 404 for an unknown or non-UUID chat', async () => {
    for (const id of ['0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e', 'nope']) {
      await send(id, 'hi').expect(404);
      await http().get(`/chats/${id}/messages`).expect(404);
    }
    expect(llm.calls).toHaveLength(0);
  });

  it('should keep the user message and report it when the provider fails', async () => {
    llm.respond = () => {
      throw new LlmUpstreamError('The language model answered HTTP 500.');
    };
    const chat = await newChat();
    const response = await send(chat.id, 'Are you there?').expect(502);
    expect(response.body).toMatchObject({
      type: 'urn:konko:problem:llm-failed',
      status: 502,
      userMessage: { seq: 1, role: 'user', content: 'Are you there?' },
    });

    llm.respond = echoReply;
    const next = await send(chat.id, 'Now?').expect(201);
    expect(next.body.userMessage.seq).toBe(2);
    expect(llm.calls[1].request.messages.slice(1)).toEqual([
      { role: 'user', content: 'Are you there?' },
      { role: 'user', content: 'Now?' },
    ]);
  });

  it('should report a provider that throws something unexpected as 502, not 500', async () => {
    llm.respond = () => {
      throw new TypeError('undefined is not a function');
    };
    const chat = await newChat();
    const response = await send(chat.id, 'hi').expect(502);
    expect(JSON.stringify(response.body)).not.toContain('TypeError');
    expect(response.body.userMessage.content).toBe('hi');
  });
});
