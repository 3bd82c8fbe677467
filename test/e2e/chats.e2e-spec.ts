import { randomUUID } from 'node:crypto';
import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { Page, walkPages } from '../support/pages';
import { createTestApp } from '../support/test-app';

describe('Chats (e2e)', () => {
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());
  const newChat = async (body: object = {}) => (await http().post('/chats').send(body).expect(201)).body;

  beforeEach(async () => {
    app = await createTestApp();
  });
  afterEach(() => app.close());

  it('should create a chat with defaults and a Location header', async () => {
    const response = await http().post('/chats').expect(201);
    expect(response.headers.location).toBe(`/chats/${response.body.id}`);
    expect(response.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      title: null,
      systemPrompt: null,
      model: 'gpt-4.1-mini',
      metadata: {},
      messageCount: 0,
      createdAt: expect.any(String),
      updatedAt: response.body.createdAt,
      lastMessageAt: null,
      currentMessageId: null,
    });
    expect(new Date(response.body.createdAt).toISOString()).toBe(response.body.createdAt);
  });

  it('should store every field it is given', async () => {
    const chat = await newChat({
      title: 'Lisbon',
      systemPrompt: 'Be brief.',
      model: 'llama3',
      metadata: { plan: 'pro' },
    });
    expect(chat).toMatchObject({
      title: 'Lisbon',
      systemPrompt: 'Be brief.',
      model: 'llama3',
      metadata: { plan: 'pro' },
    });
    expect((await http().get(`/chats/${chat.id}`).expect(200)).body).toEqual(chat);
  });

  it.each([
    ['an unknown field', { colour: 'blue' }, 'colour'],
    ['a title over 200 characters', { title: 'x'.repeat(201) }, 'title'],
    ['a blank title', { title: '   ' }, 'title'],
    ['a system prompt over 8,000 characters', { systemPrompt: 'x'.repeat(8001) }, 'systemPrompt'],
    ['a non-string model', { model: 42 }, 'model'],
    [
      '17 metadata keys',
      { metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
      'metadata',
    ],
    ['a metadata key over 64 characters', { metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata'],
    ['a metadata value over 512 characters', { metadata: { k: 'v'.repeat(513) } }, 'metadata'],
    ['a non-string metadata value', { metadata: { k: 1 } }, 'metadata'],
  ])('should reject %s with 422 naming the field', async (_case, body, field) => {
    const response = await http().post('/chats').send(body).expect(422);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
  });

  it('should reject an unknown field named like a key every object has, on every body and query', async () => {
    const chat = await newChat();
    const routes = [
      (raw: string) => http().post('/chats').type('json').send(raw),
      (raw: string) => http().patch(`/chats/${chat.id}`).type('json').send(raw),
      (raw: string) => http().post(`/chats/${chat.id}/messages`).type('json').send(raw),
      (raw: string) => http().post('/chats/import').type('json').send(raw),
    ];
    for (const key of ['__proto__', 'constructor', 'toString', 'prototype']) {
      for (const send of routes) {
        const response = await send(`{"title":"x","content":"Hi","messages":[],${JSON.stringify(key)}:{"a":1}}`);
        expect(response.status).toBe(422);
        expect(response.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: key })]));
      }
      await http().get(`/chats?${key}=1`).expect(422);
    }
    expect((await http().get(`/chats/${chat.id}`).expect(200)).body).toEqual(chat);
  });

  it('should accept the limits exactly', async () => {
    const metadata = Object.fromEntries(
      Array.from({ length: 16 }, (_, i) => [`${i}`.padEnd(64, 'k'), 'v'.repeat(512)]),
    );
    const chat = await newChat({ title: 't'.repeat(200), systemPrompt: 's'.repeat(8000), metadata });
    expect(Object.keys(chat.metadata)).toHaveLength(16);
  });

  it('should list chats newest first and walk every page exactly once', async () => {
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await newChat({ title: `chat ${i}` })).id);

    const page = async (cursor?: string) => {
      const body: Page<{ id: string }> = (await http().get('/chats').query({ limit: 3, cursor }).expect(200)).body;
      expect(body.data.length).toBeLessThanOrEqual(3);
      return body;
    };
    const seen = await walkPages(await page(), page, 10);

    expect(seen.map((chat) => chat.id)).toEqual([...created].reverse());
  });

  it('should keep pages stable when chats are deleted between pages', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await newChat()).id);
    const first = (await http().get('/chats?limit=2').expect(200)).body;
    await http().delete(`/chats/${ids[1]}`).expect(204);
    const second = (await http().get('/chats').query({ limit: 2, cursor: first.nextCursor }).expect(200)).body;
    expect(second.data.map((c: { id: string }) => c.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();
  });

  it('should default to 20 per page and reject limits outside 1–100, or not written as a whole number', async () => {
    for (let i = 0; i < 21; i++) await newChat();
    const page = (await http().get('/chats').expect(200)).body;
    expect(page.data).toHaveLength(20);
    expect(page.nextCursor).toEqual(expect.any(String));
    // JavaScript's Number() would read the last six as 0, 16, 10, 5, 5 and 2.
    for (const limit of ['0', '101', 'abc', '1.5', '', '0x10', '1e1', ' 5', '+5', '0b10']) {
      const response = await http().get('/chats').query({ limit }).expect(422);
      expect(response.body.errors[0].field).toBe('limit');
    }
    expect((await http().get('/chats?limit=05').expect(200)).body.data).toHaveLength(5);
  });

  it('should reject a cursor that is not from the chats list', async () => {
    const chat = await newChat();
    await http().post(`/chats/${chat.id}/messages`).send({ content: 'hi' }).expect(201);
    await http().post(`/chats/${chat.id}/messages`).send({ content: 'again' }).expect(201);
    const messagesCursor = (await http().get(`/chats/${chat.id}/messages?limit=1`).expect(200)).body.nextCursor;
    for (const cursor of [messagesCursor, 'garbage', '']) {
      const response = await http().get('/chats').query({ cursor }).expect(422);
      expect(response.body.errors).toEqual([{ field: 'cursor', message: expect.any(String) }]);
    }
  });

  it('should reject cursors with positions the service never issues', async () => {
    const chat = await newChat();
    const forged = (scope: string, position: unknown) =>
      Buffer.from(JSON.stringify({ s: scope, p: position })).toString('base64url');
    const lists: [string, string][] = [
      ['/chats', forged('chats', 'not-a-chat-id')],
      [`/chats/${chat.id}/messages`, forged(`messages:${chat.id}`, 1e300)],
      [`/chats/${chat.id}/messages`, forged(`messages:${chat.id}`, -1)],
      [`/chats/${chat.id}/messages`, forged(`messages:${chat.id}`, 1.5)],
      // Past the largest seq PostgreSQL can store, on every storage.
      [`/chats/${chat.id}/messages?branch=all`, forged(`messages:${chat.id}`, 2 ** 31)],
      [`/chats/${chat.id}/messages`, forged(`branch:${chat.id}`, 2 ** 31)],
    ];
    for (const [path, cursor] of lists) {
      const response = await http().get(path).query({ cursor }).expect(422);
      expect(response.body.errors).toEqual([{ field: 'cursor', message: expect.any(String) }]);
    }
  });

  it('should rename a chat, clear fields with null and leave absent fields alone', async () => {
    const chat = await newChat({ title: 'Old', systemPrompt: 'Be brief.', metadata: { a: '1' } });
    const renamed = (await http().patch(`/chats/${chat.id}`).send({ title: 'New' }).expect(200)).body;
    expect(renamed).toMatchObject({ title: 'New', systemPrompt: 'Be brief.', metadata: { a: '1' } });
    expect(renamed.updatedAt >= chat.updatedAt).toBe(true);

    const cleared = (
      await http().patch(`/chats/${chat.id}`).send({ title: null, systemPrompt: null, metadata: null }).expect(200)
    ).body;
    expect(cleared).toMatchObject({ title: null, systemPrompt: null, metadata: {} });
    expect((await http().get(`/chats/${chat.id}`).expect(200)).body).toEqual(cleared);
  });

  it('should leave a chat as it was, updatedAt included, on a PATCH that names no field', async () => {
    const chat = await newChat({ title: 'Kept' });
    for (const body of [{}, undefined]) {
      const request = http().patch(`/chats/${chat.id}`);
      const answered = (await (body === undefined ? request : request.send(body)).expect(200)).body;
      expect(answered).toEqual(chat);
    }
    expect((await http().get(`/chats/${chat.id}`).expect(200)).body).toEqual(chat);
    await http().patch(`/chats/${randomUUID()}`).send({}).expect(404);
  });

  it("should refuse to change a chat's model or id through PATCH", async () => {
    const chat = await newChat();
    const response = await http().patch(`/chats/${chat.id}`).send({ model: 'other', id: 'x' }).expect(422);
    expect(response.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['id', 'model']);
  });

  it('should delete a chat and its messages; later calls on it are 404', async () => {
    const chat = await newChat();
    await http().post(`/chats/${chat.id}/messages`).send({ content: 'hi' }).expect(201);
    await http().delete(`/chats/${chat.id}`).expect(204);
    await http().get(`/chats/${chat.id}`).expect(404);
    await http().patch(`/chats/${chat.id}`).send({ title: 'x' }).expect(404);
    await http().delete(`/chats/${chat.id}`).expect(404);
    await http().get(`/chats/${chat.id}/messages`).expect(404);
    await http().post(`/chats/${chat.id}/messages`).send({ content: 'hi' }).expect(404);
    expect((await http().get('/chats').expect(200)).body.data).toEqual([]);
  });

  it.each(['get', 'patch', 'delete'] as const)(
    'should answer 404 to %s on unknown and non-UUID ids',
    async (method) => {
      for (const id of ['0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e', 'not-a-uuid', '1', '%20']) {
        const response = await http()
          [method](`/chats/${id}`)
          .send(method === 'patch' ? { title: 'x' } : undefined);
        expect(response.status).toBe(404);
        expect(response.body).toMatchObject({ type: 'urn:konko:problem:chat-not-found', status: 404 });
      }
    },
  );
});
