import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { ChatDto } from '../../src/chats/dto/chat.dto';
import { LlmUnavailableError } from '../../src/llm/llm-errors';
import { MessageDto, TurnDto } from '../../src/messages/dto/message.dto';
import { deferred } from '../support/deferred';
import { EventStreamClient } from '../support/event-stream-client';
import { walkPages } from '../support/pages';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';
import { until } from '../support/until';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];
const UNKNOWN_ID = '0190a000-0000-7000-8000-000000000000';

describe.each(storages)('Branches on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    database = createDatabase ? await createDatabase() : undefined;
    app = await createTestApp({ llm, env: database ? { DATABASE_URL: database.url } : {} });
  });
  afterEach(async () => {
    await app.close();
    await database?.drop();
  });

  const newChat = async () => ((await http().post('/chats').expect(201)).body as ChatDto).id;
  const send = (chatId: string, body: object, key?: string) => {
    const req = http().post(`/chats/${chatId}/messages`);
    if (key !== undefined) req.set('Idempotency-Key', key);
    return req.send(body);
  };
  const say = async (chatId: string, content: string, parentId?: string | null) =>
    (await send(chatId, { content, parentId }).expect(201)).body as TurnDto;
  const regenerate = (chatId: string, messageId: string, key?: string) => {
    const req = http().post(`/chats/${chatId}/messages/${messageId}/regenerate`);
    if (key !== undefined) req.set('Idempotency-Key', key);
    return req;
  };
  const list = async (chatId: string, query = '') =>
    (await http().get(`/chats/${chatId}/messages${query}`).expect(200)).body as {
      data: MessageDto[];
      nextCursor: string | null;
    };
  const contents = (messages: MessageDto[]) => messages.map((m) => m.content);
  const chat = async (chatId: string) => (await http().get(`/chats/${chatId}`).expect(200)).body as ChatDto;
  const turnsInFlight = async () =>
    Number(/^chat_turns_in_flight (\d+)$/m.exec((await http().get('/metrics').expect(200)).text)?.[1]);
  /** What the LLM was last sent, without the system prompt. */
  const lastContext = () => llm.calls[llm.calls.length - 1].request.messages.slice(1).map((m) => m.content);

  it('should edit a message as a new branch whose context leaves the old one out', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'Plan a day in Lisbon');
    const second = await say(chatId, 'Add a museum');
    const edited = await say(chatId, 'Add a beach', second.userMessage.parentId);

    expect(edited.userMessage).toMatchObject({ seq: 5, parentId: first.assistantMessage.id });
    expect(edited.assistantMessage).toMatchObject({ seq: 6, parentId: edited.userMessage.id });
    expect(lastContext()).toEqual(['Plan a day in Lisbon', 'reply to: Plan a day in Lisbon', 'Add a beach']);
    expect(contents((await list(chatId)).data)).toEqual([
      'Plan a day in Lisbon',
      'reply to: Plan a day in Lisbon',
      'Add a beach',
      'reply to: Add a beach',
    ]);
    expect((await list(chatId, '?branch=all')).data.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await chat(chatId)).toMatchObject({ messageCount: 6, currentMessageId: edited.assistantMessage.id });

    // A new first message (an edit of the first one) starts a branch with no history.
    const restart = await say(chatId, 'Plan a day in Porto', null);
    expect(restart.userMessage.parentId).toBeNull();
    expect(lastContext()).toEqual(['Plan a day in Porto']);
  });

  it('should regenerate a reply beside the earlier one, plain and streamed, with the branch up to it as context', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    await say(chatId, 'two');

    const again = (await regenerate(chatId, first.userMessage.id).expect(201)).body as TurnDto;
    expect(again.userMessage).toEqual(first.userMessage);
    expect(again.assistantMessage).toMatchObject({
      seq: 5,
      role: 'assistant',
      inReplyTo: first.userMessage.id,
      parentId: first.userMessage.id,
      content: 'reply to: one',
    });
    expect(lastContext()).toEqual(['one']);
    expect(await chat(chatId)).toMatchObject({ currentMessageId: again.assistantMessage.id });
    expect(contents((await list(chatId)).data)).toEqual(['one', 'reply to: one']);

    // Naming the reply regenerates the message it answers; streamed, it starts with that message.
    const baseUrl = await listenOnLoopback(app);
    const streamed = await EventStreamClient.post(
      `${baseUrl}/chats/${chatId}/messages/${again.assistantMessage.id}/regenerate?stream=true`,
      {},
    );
    const events = await streamed.all();
    expect(events[0]).toEqual({ event: 'user_message', data: first.userMessage, id: expect.any(String) });
    expect(events.at(-1)).toMatchObject({
      event: 'assistant_message',
      data: { seq: 6, parentId: first.userMessage.id },
    });
    expect(
      events
        .filter((e) => e.event === 'delta')
        .map((e) => e.data.content)
        .join(''),
    ).toBe(events.at(-1)!.data.content);
    expect((await list(chatId, '?branch=all')).data.filter((m) => m.inReplyTo === first.userMessage.id)).toHaveLength(
      3,
    );
  });

  it('should switch branch to the newest descendant of the message named, and send after it', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    const second = await say(chatId, 'two');
    const other = (await regenerate(chatId, first.userMessage.id).expect(201)).body as TurnDto;

    const switched = await http()
      .patch(`/chats/${chatId}`)
      .send({ currentMessageId: first.assistantMessage.id.toUpperCase() })
      .expect(200);
    expect(switched.body).toMatchObject({ currentMessageId: second.assistantMessage.id, messageCount: 5 });
    expect(contents((await list(chatId)).data)).toEqual(['one', 'reply to: one', 'two', 'reply to: two']);
    await say(chatId, 'three');
    expect(lastContext()).toEqual(['one', 'reply to: one', 'two', 'reply to: two', 'three']);

    await http()
      .patch(`/chats/${chatId}`)
      .send({ currentMessageId: other.assistantMessage.id, title: 'Picked' })
      .expect(200);
    expect(await chat(chatId)).toMatchObject({ title: 'Picked', currentMessageId: other.assistantMessage.id });
    await say(chatId, 'after the other reply');
    expect(lastContext()).toEqual(['one', 'reply to: one', 'after the other reply']);
  });

  it("should answer 422 naming the field for a parent or current message that is not the chat's, and store nothing", async () => {
    const chatId = await newChat();
    const otherChat = await newChat();
    const theirs = await say(otherChat, 'theirs');
    await say(chatId, 'mine');
    for (const parentId of [theirs.userMessage.id, UNKNOWN_ID, 'not-a-uuid', 42]) {
      const response = await send(chatId, { content: 'orphan', parentId }).expect(422);
      expect(response.body).toMatchObject({
        type: 'urn:konko:problem:validation-failed',
        errors: [{ field: 'parentId' }],
      });
    }
    for (const currentMessageId of [theirs.userMessage.id, UNKNOWN_ID, 'nope', null]) {
      const response = await http()
        .patch(`/chats/${chatId}`)
        .send({ currentMessageId, title: 'Unchanged?' })
        .expect(422);
      expect(response.body.errors).toEqual([{ field: 'currentMessageId', message: expect.any(String) }]);
    }
    expect(await chat(chatId)).toMatchObject({ messageCount: 2, title: null });
    expect(llm.calls).toHaveLength(2);
  });

  it("should answer 404 for a regeneration of a message that is not the chat's, and 422 or 415 for a body", async () => {
    const chatId = await newChat();
    const otherChat = await newChat();
    const theirs = await say(otherChat, 'theirs');
    const mine = await say(chatId, 'mine');
    for (const messageId of [theirs.userMessage.id, UNKNOWN_ID, 'not-a-uuid']) {
      const response = await regenerate(chatId, messageId).expect(404);
      expect(response.body.type).toBe('urn:konko:problem:message-not-found');
    }
    await regenerate(UNKNOWN_ID, mine.userMessage.id).expect(404);
    const withField = await regenerate(chatId, mine.userMessage.id).send({ content: 'x' }).expect(422);
    expect(withField.body.errors).toEqual([{ field: 'content', message: 'property content should not exist' }]);
    await regenerate(chatId, mine.userMessage.id).set('Content-Type', 'text/plain').send('again').expect(415);
    await regenerate(chatId, mine.userMessage.id).send({}).expect(201);
    expect(llm.calls).toHaveLength(3);
  });

  it('should keep the user message and answer the upstream failure of a regeneration as for sending', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    llm.respond = () => {
      throw new LlmUnavailableError('The language model answered HTTP 503.');
    };
    const failed = await regenerate(chatId, first.userMessage.id).expect(503);
    expect(failed.body).toMatchObject({ type: 'urn:konko:problem:llm-unavailable', userMessage: first.userMessage });
    expect((await list(chatId, '?branch=all')).data).toHaveLength(2);
  });

  it('should replay a regeneration with the same Idempotency-Key, and refuse the key for another message', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    const second = await say(chatId, 'two');
    const once = await regenerate(chatId, first.userMessage.id, 'again-1').expect(201);
    const twice = await regenerate(chatId, first.assistantMessage.id, 'again-1').expect(201);
    expect(twice.headers['idempotent-replayed']).toBe('true');
    expect(twice.body).toEqual(once.body);
    const other = await regenerate(chatId, second.userMessage.id, 'again-1').expect(422);
    expect(other.body.type).toBe('urn:konko:problem:idempotency-key-reused');
    expect(llm.calls).toHaveLength(3);

    // A send's fingerprint holds its parent: the same text after another message is another request.
    await send(chatId, { content: 'same' }, 'send-1').expect(201);
    await send(chatId, { content: 'same', parentId: first.userMessage.id }, 'send-1').expect(422);
  });

  it("should resume a failed regeneration with its key without taking another key's reply for its own", async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    llm.respond = (req, call) => {
      if (call === 2) throw new LlmUnavailableError('The language model answered HTTP 503.');
      return echoReply(req);
    };
    await regenerate(chatId, first.userMessage.id, 'regen-a').expect(503);
    const byAnother = (await regenerate(chatId, first.userMessage.id, 'regen-b').expect(201)).body as TurnDto;
    const resumed = (await regenerate(chatId, first.userMessage.id, 'regen-a').expect(201)).body as TurnDto;
    expect(resumed.assistantMessage.id).not.toBe(byAnother.assistantMessage.id);
    expect(resumed.userMessage).toEqual(first.userMessage);
    expect(llm.calls).toHaveLength(4);
  });

  it("should page both lists stably and refuse the other list's cursors", async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'q1');
    for (let i = 2; i <= 4; i++) await say(chatId, `q${i}`);
    await say(chatId, 'q2b', first.assistantMessage.id);
    await say(chatId, 'q3b');
    const walk = async (query: string) => {
      const pages = (cursor: string) => list(chatId, `?limit=3${query}&cursor=${cursor}`);
      return (await walkPages(await list(chatId, `?limit=3${query}`), pages, 10)).map((m) => m.seq);
    };
    expect(await walk('')).toEqual([1, 2, 9, 10, 11, 12]);
    expect(await walk('&branch=all')).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const currentCursor = (await list(chatId, '?limit=2')).nextCursor!;
    const allCursor = (await list(chatId, '?limit=2&branch=all')).nextCursor!;
    await http().get(`/chats/${chatId}/messages?branch=all&cursor=${currentCursor}`).expect(422);
    await http().get(`/chats/${chatId}/messages?cursor=${allCursor}`).expect(422);
    await http().get(`/chats/${chatId}/messages?branch=some`).expect(422);
  });

  it('should keep walking the branch a cursor started on, whatever becomes current meanwhile', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    const second = await say(chatId, 'two');
    const walked = await list(chatId, '?limit=2');
    expect(walked.data.map((m) => m.seq)).toEqual([1, 2]);

    // A second reply to message 1 is now current: the walk still ends at message 4, not at it.
    await regenerate(chatId, first.userMessage.id).expect(201);
    const rest = await list(chatId, `?limit=2&cursor=${walked.nextCursor}`);
    expect(rest.data.map((m) => m.seq)).toEqual([3, 4]);
    expect(rest.data[0].parentId).toBe(walked.data[1].id);
    expect(rest).toMatchObject({ nextCursor: null });

    // So too after a switch to another branch and a send there, with a page of one at a time.
    const fromStart = await list(chatId, '?limit=1');
    await http().patch(`/chats/${chatId}`).send({ currentMessageId: second.userMessage.id }).expect(200);
    await say(chatId, 'three');
    const path = await walkPages(fromStart, (cursor) => list(chatId, `?limit=1&cursor=${cursor}`), 10);
    expect(path.map((m) => m.seq)).toEqual([1, 5]);
    expect(contents((await list(chatId)).data)).toEqual([
      'one',
      'reply to: one',
      'two',
      'reply to: two',
      'three',
      'reply to: three',
    ]);
  });

  it('should answer 422 for a forged branch cursor, and nothing for a message not of the chat', async () => {
    const chatId = await newChat();
    await say(chatId, 'one');
    const theirs = await say(await newChat(), 'theirs');
    const forged = (position: unknown) =>
      Buffer.from(JSON.stringify({ s: `branch:${chatId}`, p: position })).toString('base64url');
    for (const position of [
      { t: 'not-a-uuid', s: 1 },
      { t: UNKNOWN_ID, s: 2 ** 31 },
      { t: UNKNOWN_ID, s: -1 },
      { t: UNKNOWN_ID },
      { s: 1 },
      [UNKNOWN_ID, 1],
    ]) {
      const response = await http()
        .get(`/chats/${chatId}/messages`)
        .query({ cursor: forged(position) })
        .expect(422);
      expect(response.body.errors).toEqual([{ field: 'cursor', message: expect.any(String) }]);
    }
    for (const t of [UNKNOWN_ID, theirs.assistantMessage.id]) {
      expect(await list(chatId, `?cursor=${forged({ t, s: 0 })}`)).toEqual({ data: [], nextCursor: null });
    }
    // A bare seq, as cursors were before they named their branch, pages the current branch.
    expect(contents((await list(chatId, `?cursor=${forged(1)}`)).data)).toEqual(['reply to: one']);
  });

  it('should line up concurrent sends after a switch in arrival order', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'one');
    await say(chatId, 'two');
    await http().patch(`/chats/${chatId}`).send({ currentMessageId: first.userMessage.id }).expect(200);
    await say(chatId, 'edit', first.userMessage.id); // a branch, now current
    const [called, gate] = [deferred(), deferred()];
    llm.respond = async (req) => {
      called.resolve();
      await gate.promise;
      return echoReply(req);
    };
    const sends = ['a', 'b', 'c'].map((content) => send(chatId, { content }).then((r) => r));
    // The replies wait until one send holds the chat and the other two wait for it.
    await called.promise;
    await until(async () => (await turnsInFlight()) >= 3, 'all three sends to be admitted (chat_turns_in_flight 3)');
    gate.resolve();
    const turns = (await Promise.all(sends)).map((r) => r.body as TurnDto);
    const inArrivalOrder = [...turns].sort((x, y) => x.userMessage.seq - y.userMessage.seq);
    const branch = (await list(chatId)).data;
    expect(contents(branch)).toEqual([
      'one',
      'edit',
      'reply to: edit',
      ...inArrivalOrder.flatMap((t) => [t.userMessage.content, t.assistantMessage.content]),
    ]);
    expect(branch.every((m, i) => m.parentId === (i === 0 ? null : branch[i - 1].id))).toBe(true);
  });

  it('should count and summarize every branch', async () => {
    const chatId = await newChat();
    const first = await say(chatId, 'The refund arrived late.');
    await say(chatId, 'The delivery was quick.', first.assistantMessage.parentId);
    await regenerate(chatId, first.userMessage.id).expect(201);
    const summary = (await http().get(`/chats/${chatId}/summary`).expect(200)).body;
    expect(summary).toMatchObject({ messageCount: 5, userMessageCount: 2, assistantMessageCount: 3 });
    expect((await chat(chatId)).messageCount).toBe(5);
  });
});
