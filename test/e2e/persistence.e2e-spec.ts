import { EventStreamClient } from '../support/event-stream-client';
import { FakeOpenAiServer, RecordedRequest } from '../support/fake-openai-server';
import { ServiceProcess, startService } from '../support/service-process';
import { TestDatabase, testDatabases } from '../support/test-databases';
import type { MessageDto } from '../../src/messages/dto/message.dto';

interface Turn {
  userMessage: MessageDto;
  assistantMessage: MessageDto;
}

async function createChat(service: ServiceProcess): Promise<string> {
  const response = await fetch(`${service.baseUrl}/chats`, { method: 'POST' });
  expect(response.status).toBe(201);
  return ((await response.json()) as { id: string }).id;
}

function sendTurn(service: ServiceProcess, chatId: string, content: string): Promise<Response> {
  return fetch(`${service.baseUrl}/chats/${chatId}/messages`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ content }),
  });
}

async function listMessages(service: ServiceProcess, chatId: string): Promise<MessageDto[]> {
  const response = await fetch(`${service.baseUrl}/chats/${chatId}/messages?limit=1000`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { data: MessageDto[] }).data;
}

const lastMessageOf = (request: RecordedRequest) => request.body?.messages?.at(-1)?.content;
const conversation = (messages: MessageDto[]) => messages.map(({ role, content }) => ({ role, content }));
const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** The LLM request that produced the reply to `question`, and what it had in context besides the system prompt. */
function contextOfReplyTo(llm: FakeOpenAiServer, question: MessageDto) {
  const requests = llm.requests.filter((r) => lastMessageOf(r) === question.content);
  expect(requests).toHaveLength(1);
  return requests[0].body!.messages!.slice(1);
}

// Each test starts service processes and drives real databases.
jest.setTimeout(60_000);

describe.each(testDatabases())('Persistence on %s (e2e, built service processes)', (storage, createDatabase) => {
  let database: TestDatabase;
  let llm: FakeOpenAiServer;
  const services: ServiceProcess[] = [];
  const start = async (env: Record<string, string> = {}) => {
    const service = await startService({
      DATABASE_URL: database.url,
      OPENAI_BASE_URL: llm.baseUrl,
      LLM_MAX_RETRIES: '0',
      ...env,
    });
    services.push(service);
    return service;
  };

  beforeEach(async () => {
    database = await createDatabase();
    llm = await new FakeOpenAiServer().start();
  });
  afterEach(async () => {
    for (const service of services.splice(0)) await service.stop();
    await llm.close();
    await database.drop();
  });

  it('should serialize 20 simultaneous turns of one chat sent to two service processes', async () => {
    const services = [await start(), await start()];
    for (const service of services) expect(service.startupLine).toContain(`storage: ${storage} (`);
    expect(services[0].startupLine).not.toContain('password');
    const chatId = await createChat(services[0]);
    // The first reply pauses after one piece until every turn has reached a service.
    llm.enqueue({ kind: 'reply', holdAfter: 1 });
    const contents = oneToN(20).map((i) => `message ${i}`);

    // A streamed turn answers 200 before it waits for the chat: once all have, all 20 are in the services.
    const streams = await Promise.all(
      contents.map((content, i) =>
        EventStreamClient.post(`${services[i % 2].baseUrl}/chats/${chatId}/messages`, { content }),
      ),
    );
    expect(streams.map((s) => s.response.status)).toEqual(contents.map(() => 200));
    llm.release();
    const outcomes = await Promise.all(streams.map((s) => s.all()));

    expect(outcomes.map((events) => events.at(-1)?.event)).toEqual(contents.map(() => 'assistant_message'));
    const messages = await listMessages(services[1], chatId);
    expect(messages.map((m) => m.seq)).toEqual(oneToN(40));
    expect(new Set(messages.filter((m) => m.role === 'user').map((m) => m.content))).toEqual(new Set(contents));
    for (let i = 0; i < messages.length; i += 2) {
      const [question, reply] = [messages[i], messages[i + 1]];
      expect(question).toMatchObject({ role: 'user', inReplyTo: null });
      expect(reply).toMatchObject({
        role: 'assistant',
        inReplyTo: question.id,
        content: `reply to: ${question.content}`,
      });
      // Generated with every earlier message in context, whichever process ran the turn.
      expect(contextOfReplyTo(llm, question)).toEqual(conversation(messages.slice(0, i + 1)));
    }
  });

  it('should keep every answered turn whole when killed mid-load, and answer the next turn after a restart', async () => {
    // A short lease: the killed process's lease must lapse before the restarted one can take the chat.
    const env = { CHAT_LOCK_LEASE_MS: '1500' };
    let service = await start(env);
    const chatIds = [await createChat(service), await createChat(service)];
    const answered = new Map<string, Turn[]>(chatIds.map((id) => [id, []]));
    let answeredCount = 0;
    let killedDuring: string | undefined;
    let killed: Promise<void> | undefined;
    // Once 10 turns are answered, kill the service as its next turn calls the LLM: that turn's user
    // message is stored, and its reply can never be (the kill precedes the LLM's answer).
    llm.on('request', (request: RecordedRequest) => {
      if (killed || answeredCount < 10) return;
      killedDuring = lastMessageOf(request);
      killed = service.kill();
    });

    const sendUntilKilled = async (chatId: string, sender: number) => {
      for (let i = 1; i <= 50 && !killed; i++) {
        try {
          const response = await sendTurn(service, chatId, `${chatId} sender ${sender} turn ${i}`);
          if (response.status !== 201) throw new Error(`turn answered ${response.status}`);
          answered.get(chatId)!.push((await response.json()) as Turn);
          answeredCount += 1;
        } catch (error) {
          if (killed) return;
          throw error;
        }
      }
    };
    // Two senders per chat, so turns also queue for the chat when the kill comes.
    await Promise.all(chatIds.flatMap((chatId) => [sendUntilKilled(chatId, 1), sendUntilKilled(chatId, 2)]));
    expect(killed).toBeDefined();
    await killed;
    expect(answeredCount).toBeGreaterThanOrEqual(10);

    service = await start(env);
    for (const chatId of chatIds) {
      const messages = await listMessages(service, chatId);
      expect(messages.map((m) => m.seq)).toEqual(oneToN(messages.length));
      for (const turn of answered.get(chatId)!) {
        expect(messages[turn.userMessage.seq - 1]).toEqual(turn.userMessage);
        expect(messages[turn.assistantMessage.seq - 1]).toEqual(turn.assistantMessage);
      }
      // Whole pairs, except a user message without its reply that only a turn running at the kill may
      // leave, last. The turn whose LLM call triggered the kill is sure to have left one.
      const pairs = messages.length - (messages.length % 2);
      for (let i = 0; i < pairs; i += 2) {
        expect(messages[i]).toMatchObject({ role: 'user' });
        expect(messages[i + 1]).toMatchObject({ role: 'assistant', inReplyTo: messages[i].id });
      }
      const unanswered = messages.length % 2 === 1 ? messages[messages.length - 1] : undefined;
      if (unanswered) expect(unanswered.role).toBe('user');
      if (killedDuring?.startsWith(chatId)) expect(unanswered?.content).toBe(killedDuring);

      const next = await sendTurn(service, chatId, `${chatId} after the restart`);
      expect(next.status).toBe(201);
      const turn = (await next.json()) as Turn;
      expect(turn.userMessage.seq).toBe(messages.length + 1);
      expect(turn.assistantMessage).toMatchObject({ seq: messages.length + 2, inReplyTo: turn.userMessage.id });
      // The reply saw the whole stored history, the unanswered message included.
      expect(contextOfReplyTo(llm, turn.userMessage)).toEqual(conversation([...messages, turn.userMessage]));
    }
  });
});
