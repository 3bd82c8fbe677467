import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { OPEN_TENANT_ID } from '../../src/auth/tenant';
import { LlmUpstreamError } from '../../src/llm/llm-errors';
import { LlmReply, LlmRequest } from '../../src/llm/llm-provider';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { deferred } from '../support/deferred';
import { echoReply, RecordingLlmProvider, Responder } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { until } from '../support/until';

const isTitleRequest = (req: LlmRequest) => req.messages[0].content.startsWith('Write a title');
const FIRST = 'Can you help me plan a vegetarian dinner party for eight people?';

describe('Automatic chat titles (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const start = async (env: Record<string, string> = {}, repository?: InMemoryChatRepository) => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({ llm, env, repository });
  };
  const titleOf = async (chatId: string) => (await http().get(`/chats/${chatId}`).expect(200)).body.title;
  /** The title AUTO_TITLE=llm sets after the turn has answered, once the chat has one. */
  const titleSetOf = (chatId: string) => until(() => titleOf(chatId), `chat ${chatId} to be titled`);
  const newChat = async (body: object = {}) => (await http().post('/chats').send(body).expect(201)).body.id;
  const send = (chatId: string, content: string) =>
    http().post(`/chats/${chatId}/messages`).send({ content }).expect(201);

  afterEach(() => app.close());

  it('should title an untitled chat from its first message after the first exchange', async () => {
    await start();
    const chatId = await newChat();
    expect(await titleOf(chatId)).toBeNull();
    await send(chatId, FIRST);
    expect(await titleOf(chatId)).toBe('Can you help me plan a vegetarian dinner party for eight…');
    await send(chatId, 'Something completely different about trains.');
    expect(await titleOf(chatId)).toBe('Can you help me plan a vegetarian dinner party for eight…');
  });

  it('should never overwrite a title the user set, even while the first turn runs', async () => {
    await start();
    const titled = await newChat({ title: 'Mine' });
    await send(titled, FIRST);
    expect(await titleOf(titled)).toBe('Mine');

    const chatId = await newChat();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let replyStarted!: () => void;
    const started = new Promise<void>((resolve) => (replyStarted = resolve));
    llm.respond = async (req) => {
      replyStarted();
      await held;
      return echoReply(req);
    };
    // supertest sends on then(): start the request now.
    const turn = send(chatId, FIRST).then(() => undefined);
    await started;
    await http().patch(`/chats/${chatId}`).send({ title: 'Set meanwhile' }).expect(200);
    release();
    await turn;
    expect(await titleOf(chatId)).toBe('Set meanwhile');
  });

  it('should title the chat from its first message when the first reply fails', async () => {
    await start();
    llm.respond = () => {
      throw new LlmUpstreamError('The language model answered HTTP 500.');
    };
    const chatId = await newChat();
    await http().post(`/chats/${chatId}/messages`).send({ content: FIRST }).expect(502);
    expect(await titleOf(chatId)).toBe('Can you help me plan a vegetarian dinner party for eight…');
  });

  it('should leave chats untitled with AUTO_TITLE=off', async () => {
    await start({ AUTO_TITLE: 'off' });
    const chatId = await newChat();
    await send(chatId, FIRST);
    expect(await titleOf(chatId)).toBeNull();
  });

  it.each([
    ['plain', 'application/json'],
    ['streamed', 'text/event-stream'],
  ])('should answer a %s first message before the LLM titles the chat (AUTO_TITLE=llm)', async (_, accept) => {
    await start({ AUTO_TITLE: 'llm' });
    const titleAsked = deferred();
    const titleWritten = deferred();
    llm.respond = async (req) => {
      if (!isTitleRequest(req)) return echoReply(req);
      titleAsked.resolve();
      await titleWritten.promise;
      return { content: '"Vegetarian Dinner Party."', model: 'fake', usage: null };
    };
    const chatId = await newChat();
    // Answered whole while the title call is held: were the answer to wait for it, this would hang.
    const answer = await http().post(`/chats/${chatId}/messages`).set('Accept', accept).send({ content: FIRST });
    expect(answer.status).toBeLessThan(300);
    expect(answer.text).toContain('reply to: Can you help me plan');
    await titleAsked.promise;
    expect(await titleOf(chatId)).toBeNull();

    titleWritten.resolve();
    expect(await titleSetOf(chatId)).toBe('Vegetarian Dinner Party');
    const titleCall = llm.calls.find((c) => isTitleRequest(c.request))!;
    expect(titleCall.request.messages[1]).toEqual({ role: 'user', content: FIRST });
  });

  it('should title from the first message when the service stops while the LLM writes the title', async () => {
    const repository = new InMemoryChatRepository();
    await start({ AUTO_TITLE: 'llm' }, repository);
    const titleAsked = deferred();
    llm.respond = (req) => {
      if (!isTitleRequest(req)) return echoReply(req);
      titleAsked.resolve();
      // Answers only when the service aborts it.
      return new Promise<LlmReply>((_, reject) =>
        req.signal!.addEventListener('abort', () => reject(req.signal!.reason)),
      );
    };
    const chatId = await newChat();
    await send(chatId, FIRST);
    await titleAsked.promise;
    await app.close();
    const chat = await repository.findChat({ tenantId: OPEN_TENANT_ID, chatId });
    expect(chat!.title).toBe('Can you help me plan a vegetarian dinner party for eight…');
  });

  it.each<[string, Responder]>([
    [
      'fails',
      () => {
        throw new LlmUpstreamError('The language model answered HTTP 500.');
      },
    ],
    [
      'is cut at its token limit',
      () => ({ content: 'Planning a vegetarian dinner', model: 'fake', usage: null, reason: 'length' }),
    ],
    [
      'is stopped by its content filter',
      () => ({ content: 'Dinner', model: 'fake', usage: null, reason: 'content_filter' }),
    ],
  ])('should fall back to the first message when the LLM’s title %s', async (_, title) => {
    await start({ AUTO_TITLE: 'llm' });
    llm.respond = (req, call) => (isTitleRequest(req) ? title(req, call) : echoReply(req));
    const chatId = await newChat();
    await send(chatId, FIRST);
    expect(await titleSetOf(chatId)).toBe('Can you help me plan a vegetarian dinner party for eight…');
  });

  it("should mend what no storage keeps in the LLM's title, so that the chat's export imports (AUTO_TITLE=llm)", async () => {
    await start({ AUTO_TITLE: 'llm' });
    llm.respond = (req) =>
      isTitleRequest(req) ? { content: 'Dinner\u0000party \ud83d', model: 'fake', usage: null } : echoReply(req);
    const chatId = await newChat();
    await send(chatId, FIRST);
    expect(await titleSetOf(chatId)).toBe('Dinner\uFFFDparty \uFFFD');
    const exported = (await http().get(`/chats/${chatId}/export`).expect(200)).body;
    const imported = (await http().post('/chats/import').send(exported).expect(201)).body;
    expect(imported.title).toBe('Dinner\uFFFDparty \uFFFD');
  });
});
