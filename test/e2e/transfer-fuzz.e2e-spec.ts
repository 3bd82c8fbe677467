import { NestExpressApplication } from '@nestjs/platform-express';
import fc from 'fast-check';
import request from 'supertest';
import { ChatDto } from '../../src/chats/dto/chat.dto';
import { ExportDocumentDto } from '../../src/transfer/dto/export-document.dto';
import { withoutIds } from '../support/chat-documents';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];
const RUNS = 80;

const time = fc
  .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .map((date) => date.toISOString());
/** Not blank, as sending requires. */
const text = fc.string({ maxLength: 40 }).map((s) => (s.trim() === '' ? `x${s}` : s));
/** A reply's content: the service stores an empty or blank one too. */
const reply = fc.oneof(text, fc.constantFrom('', ' ', '\n\t'));
/** Any key, those JavaScript objects have of their own (`constructor`, `__proto__` …) among them. */
const metadataKey = fc.oneof(
  fc.string({ minLength: 1, maxLength: 10 }),
  fc.constantFrom(...Object.getOwnPropertyNames(Object.prototype), 'prototype'),
);
const chatFields = {
  title: fc.option(text),
  metadata: fc.dictionary(metadataKey, fc.string({ maxLength: 10 }), { maxKeys: 3 }),
};

/** A good export document: parents name earlier messages, `inReplyTo` earlier user messages, some replies empty or blank. */
const exportDocument = fc.integer({ min: 0, max: 12 }).chain((count) =>
  fc
    .record({
      ...chatFields,
      systemPrompt: fc.option(text),
      createdAt: time,
      current: fc.option(fc.nat()),
      ids: fc.uniqueArray(fc.uuid(), { minLength: count, maxLength: count }),
      messages: fc.tuple(
        ...Array.from({ length: count }, (_, i) =>
          fc.record({
            parent: i === 0 ? fc.constant(null) : fc.option(fc.nat(i - 1), { freq: 4 }),
            inReplyTo: i === 0 ? fc.constant(null) : fc.option(fc.nat(i - 1)),
            role: fc.constantFrom('user' as const, 'assistant' as const),
            status: fc.constantFrom('completed' as const, 'incomplete' as const),
            content: reply,
            model: fc.option(fc.string({ maxLength: 20 })),
            usage: fc.option(fc.record({ promptTokens: fc.nat(), completionTokens: fc.nat() })),
            createdAt: time,
          }),
        ),
      ),
    })
    .map(({ ids, messages, current, ...chat }) => ({
      format: 'konko.chat.v1',
      chat: { ...chat, currentMessageId: current === null || count === 0 ? null : ids[current % count] },
      messages: messages.map(({ parent, inReplyTo, ...message }, i) => ({
        ...message,
        id: ids[i],
        content: message.role === 'assistant' ? message.content : `y${message.content}`,
        // Only a reply is ever cut short.
        status: message.role === 'assistant' ? message.status : 'completed',
        parentId: parent === null ? null : ids[parent],
        // Only a user message is answered: a reply named instead is answered by none.
        inReplyTo: inReplyTo === null || messages[inReplyTo].role !== 'user' ? null : ids[inReplyTo],
      })),
    })),
);

/** A good plain list of messages in the OpenAI Chat shape, sometimes led by a system message. */
const messageList = fc.record({
  ...chatFields,
  messages: fc
    .tuple(
      fc.option(text.map((content) => ({ role: 'system', content }))),
      fc.array(
        fc.oneof(
          fc.record({ role: fc.constant('user'), content: text }),
          fc.record({ role: fc.constant('assistant'), content: reply }),
        ),
        { maxLength: 12 },
      ),
    )
    .map(([system, rest]) => (system ? [system, ...rest] : rest)),
});

/** Every path to a value inside `value`, itself included. */
function pathsIn(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (typeof value !== 'object' || value === null) return [path];
  return [
    path,
    ...Object.entries(value).flatMap(([key, item]) =>
      pathsIn(item, [...path, Array.isArray(value) ? Number(key) : key]),
    ),
  ];
}

/** A copy of `document` with the value at `path` replaced. */
function replaced(document: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(document) as Record<string | number, unknown>;
  let parent = copy;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  parent[path[path.length - 1]] = value;
  return copy;
}

/** Good documents of either shape, and the same with one value anywhere in them replaced by any JSON. */
const importBody = fc.oneof(exportDocument, messageList).chain((document) =>
  fc.oneof(
    fc.constant({ body: document as unknown, good: true }),
    fc
      .tuple(fc.constantFrom(...pathsIn(document)), fc.jsonValue())
      .map(([path, value]) => ({ body: replaced(document, path, value), good: false })),
  ),
);

/** Property-based fuzzing of imports: a good document is imported, none is a 5xx, and a refused one stores nothing. */
describe.each(storages)('Import fuzzing on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  const http = () => request(app.getHttpServer());
  const newestChats = async () =>
    ((await http().get('/chats?limit=5').expect(200)).body.data as ChatDto[]).map((c) => c.id);

  beforeAll(async () => {
    database = createDatabase ? await createDatabase() : undefined;
    const env = { RATE_LIMIT: '0', ...(database && { DATABASE_URL: database.url }) };
    app = await createTestApp({ llm: new RecordingLlmProvider(), env });
  });
  afterAll(async () => {
    await app.close();
    await database?.drop();
  });

  it('should import a good document, import any other whole or refuse it with a problem and store nothing; an import exports back equal', async () => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(importBody, async ({ body, good }) => {
        const before = await newestChats();
        const response = await http()
          .post('/chats/import')
          .set('Content-Type', 'application/json')
          .send(JSON.stringify(body));
        expect(good ? [201] : [201, 400, 422]).toContain(response.status);
        statuses.add(response.status);
        if (response.status !== 201) {
          expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
          expect(await newestChats()).toEqual(before);
          return;
        }
        const chat = response.body as ChatDto;
        expect(await newestChats()).toEqual([chat.id, ...before].slice(0, 5));
        const exported = (await http().get(`/chats/${chat.id}/export`).expect(200)).body as ExportDocumentDto;
        expect(exported.chat.messageCount).toBe(exported.messages.length);
        const again = (await http().post('/chats/import').send(exported).expect(201)).body as ChatDto;
        expect(withoutIds((await http().get(`/chats/${again.id}/export`).expect(200)).body)).toEqual(
          withoutIds(exported),
        );
      }),
      { numRuns: RUNS },
    );
    // Both sides of the line were reached: the generators make good documents and bad ones.
    expect([...statuses]).toEqual(expect.arrayContaining([201, 422]));
  });
});
