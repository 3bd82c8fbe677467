import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { LlmUpstreamError } from '../../src/llm/llm-errors';
import { LlmReply, LlmRequest } from '../../src/llm/llm-provider';
import { TurnAdmission } from '../../src/messages/turn-admission';
import { EventStreamClient } from '../support/event-stream-client';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { deferred } from '../support/deferred';
import { requestsArriving } from '../support/requests-arriving';
import { TestDatabase, testDatabases } from '../support/test-databases';
import { until } from '../support/until';
import type { MessageDto } from '../../src/messages/dto/message.dto';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];

describe('Turn concurrency (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const newChat = async () => (await http().post('/chats').expect(201)).body as { id: string };

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({ llm });
  });
  afterEach(() => app.close());

  it('should serialize 20 simultaneous turns of one chat into 40 alternating messages', async () => {
    const chat = await newChat();
    const contents = Array.from({ length: 20 }, (_, i) => `message ${i + 1}`);
    // Hold the first reply until every request has reached the service, so all 20 turns overlap.
    const allArrived = requestsArriving(app.getHttpServer(), contents.length);
    llm.respond = async (req, call) => {
      if (call === 1) await allArrived;
      return echoReply(req);
    };

    const responses = await Promise.all(
      contents.map((content) => http().post(`/chats/${chat.id}/messages`).send({ content })),
    );

    expect(responses.map((r) => r.status)).toEqual(contents.map(() => 201));
    expect(llm.maxInFlight).toBe(1);
    const messages: MessageDto[] = (await http().get(`/chats/${chat.id}/messages?limit=1000`).expect(200)).body.data;
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    messages.forEach((message, index) => {
      if (index % 2 === 0) {
        expect(message).toMatchObject({ role: 'user', inReplyTo: null });
      } else {
        const question = messages[index - 1];
        expect(message).toMatchObject({
          role: 'assistant',
          inReplyTo: question.id,
          content: `reply to: ${question.content}`,
        });
      }
    });
    expect(new Set(messages.filter((m) => m.role === 'user').map((m) => m.content))).toEqual(new Set(contents));

    // The k-th call saw the system prompt and every one of the 2k - 1 messages stored before its reply.
    llm.calls.forEach(({ request: call }, k) => {
      expect(call.messages.slice(1)).toEqual(
        messages.slice(0, 2 * k + 1).map(({ role, content }) => ({ role, content })),
      );
    });
    // Each response reports the pair it stored.
    for (const response of responses) {
      const { userMessage, assistantMessage } = response.body;
      expect(assistantMessage.seq).toBe(userMessage.seq + 1);
      expect(assistantMessage.inReplyTo).toBe(userMessage.id);
    }
  });

  it('should run turns of different chats at the same time', async () => {
    const [a, b] = [await newChat(), await newChat()];
    let releaseBoth!: () => void;
    const bothInFlight = new Promise<void>((resolve) => (releaseBoth = resolve));
    // Each call is held until both are in flight. If turns of different chats waited for each
    // other, the second call would never start while the first is held: the test would fail on
    // jest's timeout, however long a loaded machine takes to start it.
    llm.respond = async (req: LlmRequest): Promise<LlmReply> => {
      if (llm.inFlight === 2) releaseBoth();
      await bothInFlight;
      return echoReply(req);
    };

    await Promise.all([
      http().post(`/chats/${a.id}/messages`).send({ content: 'to a' }).expect(201),
      http().post(`/chats/${b.id}/messages`).send({ content: 'to b' }).expect(201),
    ]);
  });

  it('should let the next turn run after a failed one', async () => {
    const chat = await newChat();
    let calls = 0;
    llm.respond = (req) => {
      calls += 1;
      if (calls === 1) throw new Error('boom');
      return echoReply(req);
    };
    const results = await Promise.all([
      http().post(`/chats/${chat.id}/messages`).send({ content: 'first' }),
      http().post(`/chats/${chat.id}/messages`).send({ content: 'second' }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 502]);
    expect((await http().get(`/chats/${chat.id}`).expect(200)).body.messageCount).toBe(3);
  });
});

describe.each(storages)('Chat settings a waiting turn uses, on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const turnsInFlight = async () =>
    Number(/^chat_turns_in_flight (\d+)$/m.exec((await http().get('/metrics').expect(200)).text)?.[1]);

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    database = createDatabase ? await createDatabase() : undefined;
    app = await createTestApp({ llm, env: database ? { DATABASE_URL: database.url } : {} });
  });
  afterEach(async () => {
    await app.close();
    await database?.drop();
  });

  // A failed turn stores its user message alone: the chat then has one message more than the
  // waiting turn saw on arrival, as if nothing else had changed it.
  it.each([
    ['replied', 201, echoReply],
    [
      'failed with no reply',
      502,
      () => {
        throw new LlmUpstreamError('The language model answered HTTP 500.');
      },
    ],
  ])(
    "should build a waiting turn's context with the chat's settings as changed while it waited, when the turn before it %s",
    async (_outcome, firstStatus, firstAnswer: (req: LlmRequest) => LlmReply) => {
      const chat = (await http().post('/chats').send({ systemPrompt: 'before' }).expect(201)).body as { id: string };
      const firstCalled = deferred();
      const firstReply = deferred();
      llm.respond = async (req, call) => {
        if (call !== 1) return echoReply(req);
        firstCalled.resolve();
        await firstReply.promise;
        return firstAnswer(req);
      };

      const first = http()
        .post(`/chats/${chat.id}/messages`)
        .send({ content: 'first' })
        .then((r) => r);
      await firstCalled.promise;
      const second = http()
        .post(`/chats/${chat.id}/messages`)
        .send({ content: 'second' })
        .then((r) => r);
      // The second turn has found the chat and waits for the first one.
      await until(async () => (await turnsInFlight()) >= 2, 'the second turn to wait (chat_turns_in_flight 2)');
      await http().patch(`/chats/${chat.id}`).send({ systemPrompt: 'after' }).expect(200);
      firstReply.resolve();

      expect((await first).status).toBe(firstStatus);
      expect((await second).status).toBe(201);
      expect(llm.calls.map((c) => c.request.messages[0].content)).toEqual(['before', 'after']);
    },
  );
});

/** A turn queued behind a running turn of its chat, stopped before its turn comes (memory storage). */
describe('Turns stopped while they wait for their chat (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  let chatId: string;
  let gate: ReturnType<typeof deferred> | undefined;
  let pending: Promise<unknown>[] = [];
  const http = () => request(app.getHttpServer());
  const turnsInFlight = async () =>
    Number(/^chat_turns_in_flight (\d+)$/m.exec((await http().get('/metrics').expect(200)).text)?.[1]);
  const storedContents = async () =>
    ((await http().get(`/chats/${chatId}/messages`).expect(200)).body.data as MessageDto[]).map((m) => m.content);

  const start = async (env: Record<string, string> = {}) => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({ llm, env: { AUTO_TITLE: 'off', ...env } });
    chatId = (await http().post('/chats').expect(201)).body.id;
  };
  afterEach(async () => {
    // A test that failed leaves no turn held, nor a request to be cut off.
    gate?.resolve();
    await Promise.allSettled(pending);
    pending = [];
    app.getHttpServer().closeAllConnections();
    await app.close();
  });

  /**
   * The first turn holds the chat until `gate` opens: its upstream answers then and not before, even
   * when the turn is stopped, as a slow upstream may. The second turn is admitted and waits.
   */
  const firstHoldsTheChat = async <T>(second: () => Promise<T>) => {
    const opened = (gate = deferred());
    const firstCalled = deferred();
    llm.respond = async (req, call) => {
      if (call === 1) {
        firstCalled.resolve();
        await opened.promise;
      }
      return echoReply(req);
    };
    const first = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content: 'first' })
      .then((r) => r);
    await firstCalled.promise;
    const waiting = second();
    pending = [first, waiting];
    await until(async () => (await turnsInFlight()) >= 2, 'the second turn to wait (chat_turns_in_flight 2)');
    return { first, waiting };
  };

  /**
   * A second turn waits while the first holds the chat, and shutdown begins with `graceMs` (what
   * SIGTERM does, main.ts): the waiting one ends at once with 503 shutting-down, storing nothing.
   */
  const shutDownWhileOneWaits = async (graceMs: number) => {
    await start();
    const { first, waiting } = await firstHoldsTheChat(() =>
      http()
        .post(`/chats/${chatId}/messages`)
        .send({ content: 'second' })
        .then((r) => r),
    );
    const drained = app.get(TurnAdmission).drain(graceMs);

    const stopped = await waiting;
    expect(stopped.status).toBe(503);
    expect(stopped.body).toMatchObject({ type: 'urn:konko:problem:shutting-down' });
    expect(stopped.body.userMessage).toBeUndefined();
    return { first, drained };
  };

  it('should end a waiting turn at once when shutdown stops it, storing nothing, before the running turn ends', async () => {
    // The grace already over: every admitted turn is stopped.
    const { first, drained } = await shutDownWhileOneWaits(0);
    // The first turn still holds the chat.
    expect(llm.inFlight).toBe(1);
    gate!.resolve();
    await first;
    await drained;
    expect(await storedContents()).toEqual(['first', 'reply to: first']);
    expect(llm.calls).toHaveLength(1);
  });

  it('should end a waiting turn as shutdown begins, storing nothing, and give the running turn the grace', async () => {
    // A grace the running turn finishes within.
    const { first, drained } = await shutDownWhileOneWaits(60_000);
    gate!.resolve();
    expect((await first).status).toBe(201);
    await drained;
    expect(await storedContents()).toEqual(['first', 'reply to: first']);
    expect(llm.calls).toHaveLength(1);
  });

  it('should end a waiting streamed turn with an error event whose id a resume tells again', async () => {
    await start();
    const baseUrl = await listenOnLoopback(app);
    const { first, waiting } = await firstHoldsTheChat(() =>
      EventStreamClient.post(`${baseUrl}/chats/${chatId}/messages`, { content: 'second' }),
    );
    const drained = app.get(TurnAdmission).drain(0);

    const events = await (await waiting).all();
    expect(events).toEqual([
      { event: 'error', id: expect.any(String), data: expect.objectContaining({ status: 503 }) },
    ]);
    const resumed = await EventStreamClient.get(`${baseUrl}/chats/${chatId}/stream`, {
      'Last-Event-ID': events[0].id!,
    });
    expect(resumed.response.status).toBe(200);
    expect(await resumed.all()).toEqual([
      { event: 'error', id: events[0].id, data: { ...events[0].data, instance: `/chats/${chatId}/stream` } },
    ]);
    gate!.resolve();
    await first;
    await drained;
  });

  it('should end a waiting turn at once when its client leaves, before the running turn ends (CLIENT_DISCONNECT=stop)', async () => {
    await start({ CLIENT_DISCONNECT: 'stop' });
    const baseUrl = await listenOnLoopback(app);
    const { first, waiting } = await firstHoldsTheChat(() =>
      EventStreamClient.post(`${baseUrl}/chats/${chatId}/messages`, { content: 'second, abandoned' }),
    );
    (await waiting).disconnect();

    await until(async () => (await turnsInFlight()) <= 1, 'the abandoned turn to end (chat_turns_in_flight 1)');
    expect(llm.inFlight).toBe(1);
    gate!.resolve();
    expect((await first).status).toBe(201);
    expect(await storedContents()).toEqual(['first', 'reply to: first']);
    expect(llm.calls).toHaveLength(1);
  });
});
