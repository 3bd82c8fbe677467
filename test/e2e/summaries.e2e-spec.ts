import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { LlmUnavailableError } from '../../src/llm/llm-errors';
import { OFFLINE_ABSTRACT } from '../../src/summaries/chat-abstracts';
import { ANGRY_SUPPORT, FixtureMessage, FRIENDLY_TRIP, TECHNICAL_POOL } from '../fixtures/conversations';
import { deferred } from '../support/deferred';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { requestsArriving } from '../support/requests-arriving';
import { createTestApp } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';
import type { SummaryDto } from '../../src/summaries/dto/summary.dto';

/** Words that must never be a topic: stop words and conversational filler. */
const NEVER_TOPICS = [
  'the',
  'and',
  'is',
  'it',
  'you',
  'we',
  'i',
  'this',
  'that',
  'thanks',
  'thank',
  'hi',
  'please',
  'so',
];

describe('Chat summaries (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const summaryOf = async (chatId: string, query = ''): Promise<SummaryDto> =>
    (await http().get(`/chats/${chatId}/summary${query}`).expect(200)).body;

  /** Plays a fixture through the API: its user messages are sent, the fake LLM answers its replies. */
  async function seed(conversation: FixtureMessage[], chat: object = { title: 'Fixture' }): Promise<string> {
    const chatId = (await http().post('/chats').send(chat).expect(201)).body.id;
    const replies = conversation.filter((m) => m.role === 'assistant').map((m) => m.content);
    llm.respond = (_req, call) => ({ content: replies[call - 1], model: 'fake-model', usage: null });
    llm.calls.length = 0;
    for (const message of conversation.filter((m) => m.role === 'user')) {
      await http().post(`/chats/${chatId}/messages`).send({ content: message.content }).expect(201);
    }
    llm.respond = echoReply;
    llm.calls.length = 0;
    return chatId;
  }

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({ llm });
  });
  afterEach(() => app.close());

  it('should summarize an empty chat with zero counts, empty lists and a neutral label', async () => {
    const chatId = (await http().post('/chats').send({ title: 'Empty' }).expect(201)).body.id;
    expect(await summaryOf(chatId)).toEqual({
      chatId,
      title: 'Empty',
      messageCount: 0,
      userMessageCount: 0,
      assistantMessageCount: 0,
      tokenCount: 0,
      firstMessageAt: null,
      lastMessageAt: null,
      highlights: [],
      topics: [],
      sentiment: {
        score: 0,
        label: 'neutral',
        byRole: { user: { score: 0, label: 'neutral' }, assistant: { score: 0, label: 'neutral' } },
      },
    });
  });

  it('should count exactly: messages by role, tokens, first and last times', async () => {
    const chatId = await seed(TECHNICAL_POOL);
    const messages = (await http().get(`/chats/${chatId}/messages`).expect(200)).body.data;
    const summary = await summaryOf(chatId);
    expect(summary).toMatchObject({
      messageCount: 10,
      userMessageCount: 5,
      assistantMessageCount: 5,
      firstMessageAt: messages[0].createdAt,
      lastMessageAt: messages[9].createdAt,
    });
    const { countTokens } = await import('gpt-tokenizer/encoding/o200k_base');
    const expectedTokens = TECHNICAL_POOL.reduce((sum, m) => sum + countTokens(m.content), 0);
    expect(summary.tokenCount).toBe(expectedTokens);
  });

  it.each([
    ['a friendly trip-planning chat', FRIENDLY_TRIP, 'positive', ['lisbon', 'tram', 'custard', 'coast', 'pastry']],
    ['an angry support chat', ANGRY_SUPPORT, 'negative', ['order', 'refund', 'delivery']],
    ['a technical chat', TECHNICAL_POOL, 'neutral', ['connection', 'pool', 'pgbouncer', 'postgresql', 'timeout']],
  ])('should read %s as a person would', async (_name, conversation, label, expectedTopics) => {
    const chatId = await seed(conversation);
    const { sentiment, topics, highlights } = await summaryOf(chatId);

    expect(sentiment.label).toBe(label);
    expect(sentiment.score).toBeGreaterThanOrEqual(-1);
    expect(sentiment.score).toBeLessThanOrEqual(1);

    expect(topics.length).toBeGreaterThan(0);
    expect(topics.length).toBeLessThanOrEqual(10);
    const terms = topics.map((t) => t.term);
    const topFive = terms.slice(0, 5).join(' | ');
    for (const expected of expectedTopics.slice(0, 2)) expect(topFive).toContain(expected);
    for (const term of terms) for (const word of term.split(' ')) expect(NEVER_TOPICS).not.toContain(word);
    expect(topics[0].score).toBe(1);
    expect(topics.map((t) => t.score)).toEqual([...topics.map((t) => t.score)].sort((a, b) => b - a));

    expect(highlights.length).toBeGreaterThan(0);
    expect(highlights.length).toBeLessThanOrEqual(5);
    const messages: { id: string; role: string; seq: number; content: string }[] = (
      await http().get(`/chats/${chatId}/messages`).expect(200)
    ).body.data;
    const seqOf = (id: string) => messages.find((m) => m.id === id)!.seq;
    for (const highlight of highlights) {
      const source = messages.find((m) => m.id === highlight.messageId)!;
      expect(source.content).toContain(highlight.text);
      expect(highlight.role).toBe(source.role);
    }
    const seqs = highlights.map((h) => seqOf(h.messageId));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('should read the angry customer as negative and the assistant as not negative', async () => {
    const { sentiment } = await summaryOf(await seed(ANGRY_SUPPORT));
    expect(sentiment.byRole.user.label).toBe('negative');
    expect(sentiment.byRole.assistant.label).not.toBe('negative');
  });

  it('should follow the chat as it changes', async () => {
    const chatId = await seed(FRIENDLY_TRIP.slice(0, 2));
    expect((await summaryOf(chatId)).messageCount).toBe(2);
    await http().post(`/chats/${chatId}/messages`).send({ content: 'One more question about trams.' }).expect(201);
    expect((await summaryOf(chatId)).messageCount).toBe(4);
    await http().patch(`/chats/${chatId}`).send({ title: 'Renamed' }).expect(200);
    expect((await summaryOf(chatId)).title).toBe('Renamed');
  });

  it('should answer 404 for unknown chats and 422 for a bad abstract flag', async () => {
    await http().get('/chats/0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e/summary').expect(404);
    await http().get('/chats/nope/summary').expect(404);
    const chatId = (await http().post('/chats').expect(201)).body.id;
    await http().get(`/chats/${chatId}/summary?abstract=yes`).expect(422);
  });

  // That the deleted chat's digest also leaves memory is for the unit tests (chat-digests.spec).
  it("should answer 404 for a deleted chat's summary and abstract, and keep the other chats' cached", async () => {
    const [deleted, kept] = [await seed(TECHNICAL_POOL), await seed(FRIENDLY_TRIP)];
    llm.respond = () => ({ content: 'About connection pools.', model: 'fake-model', usage: null });
    await summaryOf(kept, '?abstract=true');
    await summaryOf(deleted, '?abstract=true');

    await http().delete(`/chats/${deleted}`).expect(204);
    for (const query of ['', '?abstract=true']) {
      const gone = await http().get(`/chats/${deleted}/summary${query}`).expect(404);
      expect(gone.body).toMatchObject({ type: 'urn:konko:problem:chat-not-found' });
    }
    expect((await summaryOf(kept, '?abstract=true')).messageCount).toBe(FRIENDLY_TRIP.length);
    expect(llm.calls).toHaveLength(2);
  });

  describe('abstract', () => {
    it('should add an abstract written by the LLM, cached until the chat changes', async () => {
      const chatId = await seed(FRIENDLY_TRIP);
      llm.respond = () => ({ content: ' A couple plans a weekend in Lisbon. ', model: 'fake-model', usage: null });

      const first = await summaryOf(chatId, '?abstract=true');
      expect(first.abstract).toBe('A couple plans a weekend in Lisbon.');
      expect(llm.calls).toHaveLength(1);
      const prompt = llm.calls[0].request.messages;
      expect(prompt[0].role).toBe('system');
      expect(prompt[1].content).toContain('User: Hi! My partner and I are planning');
      expect(prompt[1].content).toContain('Assistant: You are very welcome!');

      await summaryOf(chatId, '?abstract=true');
      expect(llm.calls).toHaveLength(1);
      expect((await summaryOf(chatId)).abstract).toBeUndefined();

      await http()
        .patch(`/chats/${chatId}`)
        .send({ metadata: { seen: 'yes' } })
        .expect(200);
      await summaryOf(chatId, '?abstract=true');
      expect(llm.calls).toHaveLength(2);
    });

    it('should ask the LLM once for concurrent requests of the same chat state', async () => {
      const chatId = await seed(TECHNICAL_POOL);
      const called = deferred();
      const answer = deferred();
      llm.respond = async () => {
        called.resolve();
        await answer.promise;
        return { content: 'About connection pools.', model: 'fake-model', usage: null };
      };
      // The abstract is held until every request has reached the service and the first has asked
      // the LLM: the others then come while its call runs, not after it was cached.
      const arrived = requestsArriving(app.getHttpServer(), 5);
      const requests = Array.from({ length: 5 }, () => summaryOf(chatId, '?abstract=true'));
      await Promise.all([arrived, called.promise]);
      answer.resolve();
      const all = await Promise.all(requests);
      expect(all.map((s) => s.abstract)).toEqual(Array(5).fill('About connection pools.'));
      expect(llm.calls).toHaveLength(1);
    });

    it('should report an upstream failure as a problem and try again next time', async () => {
      const chatId = await seed(TECHNICAL_POOL);
      llm.respond = () => {
        throw new LlmUnavailableError('The language model answered HTTP 429.', 3);
      };
      const failed = await http().get(`/chats/${chatId}/summary?abstract=true`).expect(503);
      expect(failed.headers['retry-after']).toBe('3');
      llm.respond = () => ({ content: 'Recovered.', model: 'fake-model', usage: null });
      expect((await summaryOf(chatId, '?abstract=true')).abstract).toBe('Recovered.');
    });

    it.each([
      ['an empty answer', undefined, 'its answer was empty'],
      ['its token limit reached first', 'length', 'it reached its limit of 300 tokens first'],
      ['its content filter', 'content_filter', 'its content filter stopped it'],
    ])('should answer 502, not an empty abstract, for %s, and try again next time', async (_, reason, why) => {
      const chatId = await seed(TECHNICAL_POOL);
      llm.respond = () => ({ content: ' \n', model: 'fake-model', usage: null, reason });
      const failed = await http().get(`/chats/${chatId}/summary?abstract=true`).expect(502);
      expect(failed.body).toMatchObject({ type: expect.stringMatching(/llm-failed$/), status: 502 });
      expect(failed.body.detail).toContain(`The language model wrote no abstract: ${why}`);

      llm.respond = () => ({ content: 'About connection pools.', model: 'fake-model', usage: null });
      expect((await summaryOf(chatId, '?abstract=true')).abstract).toBe('About connection pools.');
      expect(llm.calls).toHaveLength(2);
    });
  });
});

describe('Chat summaries with the offline provider (e2e)', () => {
  it('should say plainly that no model wrote an abstract', async () => {
    const app = await createTestApp();
    try {
      const http = () => request(app.getHttpServer());
      const chatId = (await http().post('/chats').expect(201)).body.id;
      await http().post(`/chats/${chatId}/messages`).send({ content: 'Hello there' }).expect(201);
      const summary = (await http().get(`/chats/${chatId}/summary?abstract=true`).expect(200)).body;
      expect(summary.abstract).toBe(OFFLINE_ABSTRACT);
      expect(summary.abstract).toMatch(/No language model is configured/);
    } finally {
      await app.close();
    }
  });
});

describe.each(testDatabases())('Chat summaries on %s across restarts (e2e)', (_storage, createDatabase) => {
  let database: TestDatabase;
  const databases: TestDatabase[] = [];
  const apps: NestExpressApplication[] = [];
  /** A service over the database. */
  async function start() {
    const app = await createTestApp({ llm: new RecordingLlmProvider(), env: { DATABASE_URL: database.url } });
    apps.push(app);
    return { http: () => request(app.getHttpServer()) };
  }
  const userMessages = [...FRIENDLY_TRIP, ...TECHNICAL_POOL, ...ANGRY_SUPPORT].filter((m) => m.role === 'user');
  type Http = () => ReturnType<typeof request>;
  /** A chat of 60 turns (120 messages) from the fixtures' user messages. */
  async function longChat(http: Http): Promise<string> {
    const chatId = (await http().post('/chats').send({ title: 'Long' }).expect(201)).body.id;
    for (let i = 0; i < 60; i++) {
      const content = userMessages[i % userMessages.length].content;
      await http().post(`/chats/${chatId}/messages`).send({ content }).expect(201);
    }
    return chatId;
  }
  const oneMoreTurn = (http: Http, chatId: string) =>
    http().post(`/chats/${chatId}/messages`).send({ content: 'One more question about trams.' }).expect(201);

  beforeEach(async () => {
    databases.push((database = await createDatabase()));
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    for (const each of databases.splice(0)) await each.drop();
  });

  // That a restarted service starts from the stored digest and analyses only the messages stored
  // since is for the unit tests (chat-digests.spec); here, what a client sees of it.
  it('should summarize a chat summarized before a restart as a service that analyses every message anew', async () => {
    const first = await start();
    const chatId = await longChat(first.http);
    await first.http().get(`/chats/${chatId}/summary`).expect(200);
    await apps[0].close();

    const second = await start();
    await oneMoreTurn(second.http, chatId);
    const summary: SummaryDto = (await second.http().get(`/chats/${chatId}/summary`).expect(200)).body;
    expect(summary.messageCount).toBe(122);

    // The same summary as a service that analyses every message again, over a database of its own.
    databases.push((database = await createDatabase()));
    const scratch = await start();
    const copy = await longChat(scratch.http);
    await oneMoreTurn(scratch.http, copy);
    const fromScratch: SummaryDto = (await scratch.http().get(`/chats/${copy}/summary`).expect(200)).body;
    const comparable = ({ highlights, topics, sentiment, messageCount, tokenCount }: SummaryDto) => ({
      highlights: highlights.map(({ role, text }) => ({ role, text })),
      topics,
      sentiment,
      messageCount,
      tokenCount,
    });
    expect(comparable(summary)).toEqual(comparable(fromScratch));
  });
});
