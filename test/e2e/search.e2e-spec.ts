import { NestExpressApplication } from '@nestjs/platform-express';
import fc from 'fast-check';
import request from 'supertest';
import { TurnDto } from '../../src/messages/dto/message.dto';
import { SearchPageDto } from '../../src/search/dto/search-hit.dto';
import { walkPages } from '../support/pages';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];

describe.each(storages)('Search on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    database = createDatabase ? await createDatabase() : undefined;
    const llm = new RecordingLlmProvider((req) => ({
      content: `noted: ${req.messages[req.messages.length - 1].content}`,
      model: 'fake-model',
      usage: null,
    }));
    app = await createTestApp({ llm, env: database ? { DATABASE_URL: database.url } : {} });
  });
  afterEach(async () => {
    await app.close();
    await database?.drop();
  });

  const newChat = async (title: string) => (await http().post('/chats').send({ title }).expect(201)).body.id as string;
  const say = async (chatId: string, content: string, parentId?: string) =>
    (await http().post(`/chats/${chatId}/messages`).send({ content, parentId }).expect(201)).body as TurnDto;
  const search = async (query: string) => (await http().get(`/search?${query}`).expect(200)).body as SearchPageDto;

  it('should find the messages with every word, best first, with the chat and a snippet of the match', async () => {
    const orders = await newChat('Orders');
    const travel = await newChat('Travel');
    const first = await say(orders, 'Where is the refund for order 1042?');
    await say(orders, 'The carrier delayed the REFUND again', first.assistantMessage.id);
    await say(travel, 'Is a train to Porto refundable?');

    const page = await search('q=refund%20order');
    expect(page.nextCursor).toBeNull();
    expect(page.data.map((hit) => hit.message.content).sort()).toEqual([
      'Where is the refund for order 1042?',
      'noted: Where is the refund for order 1042?',
    ]);
    const hit = page.data.find((h) => h.message.id === first.userMessage.id);
    expect(hit).toEqual({
      chatId: orders,
      chatTitle: 'Orders',
      message: first.userMessage,
      snippet: {
        text: 'Where is the refund for order 1042?',
        matches: [
          [13, 19],
          [24, 29],
        ],
      },
    });
    // Every branch and every chat of the caller, by stem: "refundable" is found too.
    const refunds = await search('q=Refunded');
    expect(refunds.data.map((h) => h.chatTitle).sort()).toEqual([
      'Orders',
      'Orders',
      'Orders',
      'Orders',
      'Travel',
      'Travel',
    ]);
  });

  it('should page stably with its own cursors, and never find a deleted chat', async () => {
    const chatId = await newChat('Inbox');
    for (let i = 0; i < 7; i++) await say(chatId, `invoice number ${i}`);
    const hits = await walkPages(
      await search('q=invoice&limit=3'),
      (cursor) => search(`q=invoice&limit=3&cursor=${cursor}`),
      10,
    );
    const seen = hits.map((h) => h.message.id);
    expect(seen).toHaveLength(14);
    expect(new Set(seen).size).toBe(14);

    const firstCursor = (await search('q=invoice&limit=3')).nextCursor!;
    await http().get(`/search?q=number&cursor=${firstCursor}`).expect(422);
    const listCursor = (await http().get(`/chats/${chatId}/messages?limit=1`).expect(200)).body.nextCursor;
    await http().get(`/search?q=invoice&cursor=${listCursor}`).expect(422);

    await http().delete(`/chats/${chatId}`).expect(204);
    expect((await search('q=invoice')).data).toEqual([]);
  });

  it('should find an imported chat’s messages at once', async () => {
    const imported = await http()
      .post('/chats/import')
      .send({ title: 'Imported', messages: [{ role: 'user', content: 'Where is the zephyr parcel?' }] })
      .expect(201);
    const page = await search('q=zephyr');
    expect(page.data.map((hit) => [hit.chatId, hit.chatTitle, hit.message.content])).toEqual([
      [imported.body.id, 'Imported', 'Where is the zephyr parcel?'],
    ]);
  });

  const importMessages = async (title: string, contents: string[]) =>
    (
      await http()
        .post('/chats/import')
        .send({ title, messages: contents.map((content) => ({ role: 'user', content })) })
        .expect(201)
    ).body.id as string;
  const found = async (q: string) =>
    (await search(`q=${encodeURIComponent(q)}`)).data.map((hit) => hit.message.content);

  it('should find the words inside links, addresses, file names, markup and numbers on every storage', async () => {
    const contents = [
      'Mail user@example.com today',
      'See https://docs.konko.dev/guide/install first',
      'Edit package.json and /etc/nginx/nginx.conf',
      'Wrap it in <aside class=note>',
      'Pi is 3.14 in release v1.2.3, state-of-the-art',
    ];
    await importMessages('Links', contents);
    for (const [q, expected] of [
      ['example', contents[0]],
      ['user com', contents[0]],
      ['guide install', contents[1]],
      ['konko docs', contents[1]],
      ['package json', contents[2]],
      ['nginx conf', contents[2]],
      ['aside note', contents[3]],
      ['14 v1', contents[4]],
      ['art', contents[4]],
    ]) {
      expect([q, await found(q)]).toEqual([q, [expected]]);
    }
  });

  it('should page on while messages are stored between its pages, losing and repeating none of its hits', async () => {
    await importMessages(
      'Inbox',
      Array.from({ length: 9 }, (_, i) => `invoice ${'item '.repeat(i)}number ${i}`),
    );
    const first = await search('q=invoice&limit=3');
    // Scores that depend on the whole index (BM25: how many messages, how long, how many match) move.
    await importMessages(
      'Lunch',
      Array.from({ length: 20 }, (_, i) => `lunch menu ${i}`),
    );
    await importMessages('More', ['invoice', 'another invoice sent']);
    const hits = await walkPages(first, (cursor) => search(`q=invoice&limit=3&cursor=${cursor}`), 10);
    const seen = hits.map((hit) => hit.message.content);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.filter((content) => content.startsWith('invoice ')).sort()).toEqual(
      Array.from({ length: 9 }, (_, i) => `invoice ${'item '.repeat(i)}number ${i}`).sort(),
    );
  });

  it('should find words with combining marks whole, as every storage indexes them', async () => {
    // Devanagari vowel signs and viramas, and a decomposed é, are marks: part of their word.
    const contents = ['मुझे हिन्दी पसंद है', 'आज का दिन', 'Un cafe\u0301 noir'];
    await importMessages('Marks', contents);
    expect(await found('हिन्दी')).toEqual([contents[0]]);
    expect(await found('दिन')).toEqual([contents[1]]);
    expect(await found('cafe\u0301')).toEqual([contents[2]]);
    expect(await found('cafe')).toEqual([]);
    const [hit] = (await search(`q=${encodeURIComponent('हिन्दी')}`)).data;
    expect(hit.snippet).toEqual({ text: contents[0], matches: [[5, 11]] });
  });

  it('should find a Greek word ending in sigma however its case was written', async () => {
    // Lower case ends a word with ς; upper case has only Σ, which PostgreSQL lowers to σ.
    const contents = ['ΟΔΟΣ ΣΤΑΔΙΟΥ 12', 'στην οδος Σταδίου'];
    await importMessages('Greek', contents);
    expect((await found('ΟΔΟΣ')).sort()).toEqual(contents);
    expect((await found('οδος σταδιου')).sort()).toEqual([contents[0]]);
    const [hit] = (await search(`q=${encodeURIComponent('ΣΤΑΔΙΟΥ οδος')}`)).data;
    expect(hit.snippet).toEqual({
      text: contents[0],
      matches: [
        [0, 4],
        [5, 12],
      ],
    });
  });

  it('should import and find a long reply of hyphenated words in any script', async () => {
    // Korean words of 100 syllables, six to a hyphenated word: a reply as long as an import takes.
    const words = Array.from(
      { length: 2_534 },
      (_, i) => String.fromCodePoint(0xac00 + (i % 8), 0xac00 + Math.floor(i / 8)) + '가'.repeat(98),
    );
    const reply = words.map((word, i) => (i % 6 === 5 ? `${word} ` : `${word}-`)).join('');
    await http()
      .post('/chats/import')
      .send({
        messages: [
          { role: 'user', content: 'Write it out' },
          { role: 'assistant', content: reply },
        ],
      })
      .expect(201);
    expect(await found(words[2_000])).toEqual([reply]);
  });

  it('should page a query as long as q may be, in any script, with the cursors it gives', async () => {
    // Nearly 200 characters of Russian: a cursor that named its words would be longer than 512.
    const words = Array.from({ length: 33 }, (_, i) => `сло${String.fromCodePoint(0x430 + (i % 32))}${'во'[i >> 5]}`);
    const q = words.join(' ');
    expect([...q]).toHaveLength(197);
    await importMessages('Long', [q, `${q}!`, `${q}?`]);
    const query = `q=${encodeURIComponent(q)}&limit=1`;
    const hits = await walkPages(await search(query), (cursor) => search(`${query}&cursor=${cursor}`), 10);
    expect(hits).toHaveLength(3);
  });

  it('should answer 422 for a q that is blank, missing or too long, and a limit out of range', async () => {
    for (const query of [
      '',
      'q=',
      'q=%20%20',
      `q=${'a'.repeat(201)}`,
      'q=x&limit=0',
      'q=x&limit=101',
      'q=x&cursor=bad',
    ]) {
      const response = await http().get(`/search?${query}`).expect(422);
      expect(response.body.type).toBe('urn:konko:problem:validation-failed');
    }
    // Words no storage indexes, such as "the": a valid query that finds nothing.
    expect(await search('q=the%20and')).toEqual({ data: [], nextCursor: null });
  });

  it('should never answer a q with a 5xx', async () => {
    const chatId = await newChat('Fuzz');
    await say(chatId, 'Ünïcödé, "quotes", (parens) AND OR NOT * ^ : - 🚀 résumé');
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 200, unit: 'binary' }), async (q) => {
        const response = await http().get('/search').query({ q });
        expect([200, 422]).toContain(response.status);
      }),
      { numRuns: 60 },
    );
  });
});
