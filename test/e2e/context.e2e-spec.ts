import { NestExpressApplication } from '@nestjs/platform-express';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { once } from 'node:events';
import request from 'supertest';
import { TokenCounter } from '../../src/llm/token-counter';
import { FakeOpenAiServer } from '../support/fake-openai-server';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { until } from '../support/until';

const CONTEXT_TOKENS = 400;
const MAX_OUTPUT_TOKENS = 100;
const SYSTEM_PROMPT = 'You are a careful assistant.';
/** What the context may hold: the window less the reply's share and the reply priming. */
const BUDGET = CONTEXT_TOKENS - MAX_OUTPUT_TOKENS - TokenCounter.REPLY_PRIMING;
const cost = (content: string) => countTokens(content) + TokenCounter.MESSAGE_OVERHEAD;

describe('Conversation context (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  let chatId: string;
  const http = () => request(app.getHttpServer());
  const send = (content: string) => http().post(`/chats/${chatId}/messages`).send({ content });

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({
      llm,
      env: { LLM_CONTEXT_TOKENS: String(CONTEXT_TOKENS), LLM_MAX_OUTPUT_TOKENS: String(MAX_OUTPUT_TOKENS) },
    });
    chatId = (await http().post('/chats').send({ systemPrompt: SYSTEM_PROMPT }).expect(201)).body.id;
  });
  afterEach(() => app.close());

  it('should send the newest messages that fit the budget, always with the new message', async () => {
    const sentences = Array.from({ length: 12 }, (_, i) => `Sentence number ${i} talks about apples, pears and plums.`);
    for (const sentence of sentences) await send(sentence).expect(201);

    const stored = (await http().get(`/chats/${chatId}/messages?limit=1000`).expect(200)).body.data as {
      role: 'user' | 'assistant';
      content: string;
    }[];
    const [system, ...history] = llm.calls[llm.calls.length - 1].request.messages;
    expect(system).toEqual({ role: 'system', content: SYSTEM_PROMPT });

    // The history is the newest suffix of the chat, ending with the new user message …
    const suffix = stored.slice(stored.length - 1 - history.length, stored.length - 1);
    expect(history).toEqual(suffix.map(({ role, content }) => ({ role, content })));
    expect(history[history.length - 1]).toEqual({ role: 'user', content: sentences[11] });
    // … as long as it fits, and one message more would not.
    const used = cost(SYSTEM_PROMPT) + history.reduce((sum, m) => sum + cost(m.content), 0);
    expect(used).toBeLessThanOrEqual(BUDGET);
    const nextOlder = stored[stored.length - 2 - history.length];
    expect(used + cost(nextOlder.content)).toBeGreaterThan(BUDGET);
    expect(history.length).toBeLessThan(stored.length - 1);
  });

  it('should reject with 422 a message that cannot fit on its own, storing nothing', async () => {
    const tooLong = 'word '.repeat(BUDGET);
    const response = await send(tooLong).expect(422);
    expect(response.body).toMatchObject({
      type: 'urn:konko:problem:message-exceeds-context',
      status: 422,
      errors: [{ field: 'content', message: expect.any(String) }],
    });
    expect(llm.calls).toHaveLength(0);
    expect((await http().get(`/chats/${chatId}`)).body.messageCount).toBe(0);
  });

  it('should accept the largest message that fits on its own', async () => {
    const room = BUDGET - cost(SYSTEM_PROMPT) - TokenCounter.MESSAGE_OVERHEAD;
    const fits = ' word'.repeat(room);
    expect(countTokens(fits)).toBe(room);
    await send(fits).expect(201);
    await send(`${fits} word`).expect(422);
  });

  it('should answer a repeat of a completed turn with its outcome, though the message no longer fits the chat', async () => {
    const room = BUDGET - cost(SYSTEM_PROMPT) - TokenCounter.MESSAGE_OVERHEAD;
    const fits = ' word'.repeat(room);
    const first = await send(fits).set('Idempotency-Key', 'fits-once').expect(201);
    await http()
      .patch(`/chats/${chatId}`)
      .send({ systemPrompt: `${SYSTEM_PROMPT} Be brief.` })
      .expect(200);

    const repeat = await send(fits).set('Idempotency-Key', 'fits-once').expect(201);
    expect(repeat.headers['idempotent-replayed']).toBe('true');
    expect(repeat.body).toEqual(first.body);
    // A new request is checked against the chat as it is now.
    await send(fits).set('Idempotency-Key', 'fits-now').expect(422);
    expect(llm.calls).toHaveLength(1);
  });
});

describe('A chat model with a window smaller than the reply’s share (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    // Fine for LLM_MODEL (gpt-4.1-mini), more than a model of unknown window (8192) holds.
    app = await createTestApp({ llm, env: { LLM_MAX_OUTPUT_TOKENS: '9000' } });
  });
  afterEach(() => app.close());

  it('should refuse its turns with 422 model-window-too-small, storing nothing', async () => {
    const chatId = (await http().post('/chats').send({ model: 'llama3.2' }).expect(201)).body.id;
    const response = await http().post(`/chats/${chatId}/messages`).send({ content: 'Hello' }).expect(422);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body).toMatchObject({
      type: 'urn:konko:problem:model-window-too-small',
      status: 422,
      detail: expect.stringContaining('"llama3.2" (8192 tokens)'),
    });
    const streamed = await http().post(`/chats/${chatId}/messages?stream=true`).send({ content: 'Hello' }).expect(422);
    expect(streamed.body.type).toBe('urn:konko:problem:model-window-too-small');
    expect(llm.calls).toHaveLength(0);
    expect((await http().get(`/chats/${chatId}`)).body.messageCount).toBe(0);

    const other = (await http().post('/chats').send({ model: 'gpt-4o-mini' }).expect(201)).body.id;
    await http().post(`/chats/${other}/messages`).send({ content: 'Hello' }).expect(201);
  });
});

describe('A system prompt that grows while a turn waits for its chat (e2e)', () => {
  let upstream: FakeOpenAiServer;
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());
  const turnsInFlight = async () =>
    Number(/^chat_turns_in_flight (\d+)$/m.exec((await http().get('/metrics').expect(200)).text)?.[1]);

  beforeEach(async () => {
    upstream = await new FakeOpenAiServer().start();
    app = await createTestApp({
      env: {
        OPENAI_BASE_URL: upstream.baseUrl,
        LLM_MAX_RETRIES: '0',
        LLM_CONTEXT_TOKENS: String(CONTEXT_TOKENS),
        LLM_MAX_OUTPUT_TOKENS: String(MAX_OUTPUT_TOKENS),
      },
    });
  });
  afterEach(async () => {
    await app.close();
    await upstream.close();
  });

  it('should still send the new message, which fitted when it was sent', async () => {
    const chatId = (await http().post('/chats').send({ systemPrompt: SYSTEM_PROMPT }).expect(201)).body.id;
    upstream.enqueue({ kind: 'reply', pieces: ['One', ' moment'], holdAfter: 1 });
    const held = once(upstream, 'held');
    const first = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content: 'First' })
      .then((r) => r);
    await held;
    // Fits beside the system prompt as it is now, not beside the longer one set below.
    const content = ' word'.repeat(BUDGET - cost(SYSTEM_PROMPT) - TokenCounter.MESSAGE_OVERHEAD - 20);
    const second = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content })
      .then((r) => r);
    await until(async () => (await turnsInFlight()) >= 2, 'the second turn to wait (chat_turns_in_flight 2)');
    const longerPrompt = `${SYSTEM_PROMPT}${' Be brief.'.repeat(20)}`;
    await http().patch(`/chats/${chatId}`).send({ systemPrompt: longerPrompt }).expect(200);
    upstream.release();

    expect((await first).status).toBe(201);
    const answered = await second;
    expect(answered.status).toBe(201);
    expect(upstream.requests[1].body?.messages).toEqual([
      { role: 'system', content: longerPrompt },
      { role: 'user', content },
    ]);
    expect(answered.body.assistantMessage.content).toBe(`reply to: ${content}`);
  });
});
