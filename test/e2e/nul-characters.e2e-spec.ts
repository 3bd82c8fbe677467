import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];

/**
 * PostgreSQL cannot store U+0000 or a lone surrogate (SQLite turns the latter into U+FFFD): every
 * storage refuses both alike, as a 422 naming the field, never a 500.
 */
describe.each(storages)('Text no storage can keep on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    database = createDatabase ? await createDatabase() : undefined;
    app = await createTestApp({ llm: new RecordingLlmProvider(), env: database ? { DATABASE_URL: database.url } : {} });
  });
  afterEach(async () => {
    await app.close();
    await database?.drop();
  });

  it.each([
    ['U+0000', '\u0000', 'U+0000'],
    ['a lone surrogate', '\udc00', 'lone surrogate'],
  ])(
    'should refuse %s in any field of any body or query, naming the field, and store nothing',
    async (_, bad, says) => {
      const chatId = (await http().post('/chats').expect(201)).body.id;
      const refusals: [request.Test, string][] = [
        [
          http()
            .post('/chats')
            .send({ title: `a${bad}b` }),
          'title',
        ],
        [
          http()
            .post('/chats')
            .send({ metadata: { [`k${bad}`]: 'v' } }),
          `metadata.k${bad}`,
        ],
        [
          http()
            .post('/chats')
            .send({ metadata: { k: `v${bad}` } }),
          'metadata.k',
        ],
        [http().patch(`/chats/${chatId}`).send({ systemPrompt: bad }), 'systemPrompt'],
        [
          http()
            .post(`/chats/${chatId}/messages`)
            .send({ content: `hi${bad}there` }),
          'content',
        ],
        [
          http()
            .post('/chats/import')
            .send({
              messages: [
                { role: 'user', content: 'ok' },
                { role: 'assistant', content: `x${bad}` },
              ],
            }),
          'messages[1].content',
        ],
      ];
      // A query string is UTF-8 percent-encoded: a lone surrogate arrives as U+FFFD.
      if (bad === '\u0000')
        refusals.push([
          http()
            .get('/search')
            .query({ q: `refund${bad}` }),
          'q',
        ]);
      for (const [refusal, field] of refusals) {
        const response = await refusal.expect(422);
        expect(response.body.errors).toEqual([{ field, message: expect.stringContaining(says) }]);
      }
      expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);
      expect((await http().get(`/chats/${chatId}`).expect(200)).body).toMatchObject({
        messageCount: 0,
        systemPrompt: null,
      });
    },
  );
});
