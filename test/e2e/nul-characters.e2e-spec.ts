import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];

/** PostgreSQL cannot store U+0000: every storage refuses it alike, as a 422 naming the field, never a 500. */
describe.each(storages)('Text with U+0000 on %s storage (e2e)', (_storage, createDatabase) => {
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

  it('should refuse it in any field of any body or query, naming the field, and store nothing', async () => {
    const chatId = (await http().post('/chats').expect(201)).body.id;
    const refusals: [request.Test, string][] = [
      [http().post('/chats').send({ title: 'a\u0000b' }), 'title'],
      [
        http()
          .post('/chats')
          .send({ metadata: { 'k\u0000': 'v' } }),
        'metadata.k\u0000',
      ],
      [http().patch(`/chats/${chatId}`).send({ systemPrompt: '\u0000' }), 'systemPrompt'],
      [http().post(`/chats/${chatId}/messages`).send({ content: 'hi\u0000there' }), 'content'],
      [
        http()
          .post('/chats/import')
          .send({
            messages: [
              { role: 'user', content: 'ok' },
              { role: 'assistant', content: 'x\u0000' },
            ],
          }),
        'messages[1].content',
      ],
      [http().get('/search').query({ q: 'refund\u0000' }), 'q'],
    ];
    for (const [refusal, field] of refusals) {
      const response = await refusal.expect(422);
      expect(response.body.errors).toEqual([{ field, message: expect.stringContaining('U+0000') }]);
    }
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);
    expect((await http().get(`/chats/${chatId}`).expect(200)).body).toMatchObject({
      messageCount: 0,
      systemPrompt: null,
    });
  });
});
