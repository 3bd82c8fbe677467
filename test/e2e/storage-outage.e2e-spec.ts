import { NestExpressApplication } from '@nestjs/platform-express';
import BetterSqlite3 from 'better-sqlite3';
import request from 'supertest';
import type { MessageDto } from '../../src/messages/dto/message.dto';
import { deferred } from '../support/deferred';
import { PostgresLink } from '../support/postgres-link';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { createSqliteTestDatabase, TestDatabase, testDatabases } from '../support/test-databases';

// SQLite's case waits out the busy timeout (5 s) once.
jest.setTimeout(30_000);

const postgres = testDatabases().find(([name]) => name === 'postgres');

const STORAGE_UNAVAILABLE = {
  type: 'urn:konko:problem:storage-unavailable',
  title: 'The database is unreachable',
  status: 503,
  detail: 'The service cannot reach its database right now. Retry shortly.',
};

/** A problem document answered as the database's absence: 503, Retry-After, and no driver's words. */
function expectStorageUnavailable(response: request.Response): void {
  expect(response.status).toBe(503);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.headers['retry-after']).toBe('2');
  expect(response.body).toMatchObject(STORAGE_UNAVAILABLE);
}

describe.each(postgres ? [postgres] : [])('A PostgreSQL that goes away (e2e)', (_name, create) => {
  let database: TestDatabase;
  let link: PostgresLink;
  let app: NestExpressApplication;
  const llm = new RecordingLlmProvider();
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    database = await create();
    link = await PostgresLink.open(database.url);
    llm.respond = echoReply;
    llm.calls.length = 0;
    app = await createTestApp({ llm, env: { DATABASE_URL: link.urlFor(database.url), RATE_LIMIT: '0' } });
  });
  afterEach(async () => {
    await link.restore().catch(() => undefined);
    await app.close();
    await link.close();
    await database.drop();
  });

  it('should answer 503 storage-unavailable with Retry-After while it is down, ask no model, and serve on once it is back', async () => {
    const chatId = (await http().post('/chats').expect(201)).body.id as string;
    await http().post(`/chats/${chatId}/messages`).send({ content: 'Hello' }).expect(201);

    await link.cut();
    const asked = [
      http().get('/chats'),
      http().get(`/chats/${chatId}/messages`),
      http().patch(`/chats/${chatId}`).send({ title: 'Renamed' }),
      http().post(`/chats/${chatId}/messages`).send({ content: 'Lost?' }),
      http().post(`/chats/${chatId}/messages`).set('Accept', 'text/event-stream').send({ content: 'Lost?' }),
    ];
    for (const response of await Promise.all(asked)) expectStorageUnavailable(response);
    expect(llm.calls).toHaveLength(1);
    const unready = await http().get('/health/ready').expect(503);
    expect(unready.body.checks).toMatchObject({ storage: { status: 'down' } });

    await link.restore();
    const messages = (await http().get(`/chats/${chatId}/messages`).expect(200)).body.data as MessageDto[];
    expect(messages.map(({ role, content }) => [role, content])).toEqual([
      ['user', 'Hello'],
      ['assistant', echoReply(llm.calls[0].request).content],
    ]);
    await http().get('/health/ready').expect(200);
  });

  it('should end a turn whose database goes away under it with turn-interrupted, naming the message it stored', async () => {
    const chatId = (await http().post('/chats').expect(201)).body.id as string;
    const asked = deferred();
    const released = deferred();
    llm.respond = async (req) => {
      asked.resolve();
      await released.promise;
      return echoReply(req);
    };
    const sent = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content: 'Hello' })
      .then((response) => response);
    await asked.promise;
    await link.cut();
    released.resolve();

    const refused = await sent;
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({
      type: 'urn:konko:problem:turn-interrupted',
      userMessage: { role: 'user', content: 'Hello', seq: 1 },
    });
    await link.restore();
    const messages = (await http().get(`/chats/${chatId}/messages`).expect(200)).body.data as MessageDto[];
    expect(messages).toEqual([refused.body.userMessage]);
  });
});

describe('A SQLite file whose write lock another process holds (e2e)', () => {
  let database: TestDatabase;
  let app: NestExpressApplication;
  let holder: BetterSqlite3.Database | undefined;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    database = await createSqliteTestDatabase();
    app = await createTestApp({ env: { DATABASE_URL: database.url, RATE_LIMIT: '0' } });
  });
  afterEach(async () => {
    holder?.close();
    await app.close();
    await database.drop();
  });

  it('should answer a write 503 storage-unavailable past the busy timeout, read on meanwhile, and write once it is free', async () => {
    const chatId = (await http().post('/chats').expect(201)).body.id as string;
    if (database.settings.kind !== 'sqlite') throw new Error('a SQLite database was asked for');
    holder = new BetterSqlite3(database.settings.path);
    holder.exec('begin immediate');

    const renaming = http()
      .patch(`/chats/${chatId}`)
      .send({ title: 'Renamed' })
      .then((response) => response);
    await http().get(`/chats/${chatId}`).expect(200);
    expectStorageUnavailable(await renaming);

    holder.exec('rollback');
    await http().patch(`/chats/${chatId}`).send({ title: 'Renamed' }).expect(200);
    expect((await http().get(`/chats/${chatId}`).expect(200)).body.title).toBe('Renamed');
  });
});
