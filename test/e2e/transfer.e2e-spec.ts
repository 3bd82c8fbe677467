import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { v7 as uuidv7 } from 'uuid';
import { OPEN_TENANT_ID } from '../../src/auth/tenant';
import { ChatKey } from '../../src/chats/chat';
import { ChatRepository } from '../../src/chats/chat.repository';
import { ChatDto } from '../../src/chats/dto/chat.dto';
import { LlmUpstreamError } from '../../src/llm/llm-errors';
import { MessageDto, TurnDto } from '../../src/messages/dto/message.dto';
import { EXPORT_PAGE } from '../../src/transfer/chat-exporter';
import { ExportDocumentDto } from '../../src/transfer/dto/export-document.dto';
import { branchedDocument, withoutIds } from '../support/chat-documents';
import { EventStreamClient } from '../support/event-stream-client';
import { RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { TestDatabase, testDatabases } from '../support/test-databases';

const storages: [string, (() => Promise<TestDatabase>) | null][] = [['memory', null], ...testDatabases()];
const UNKNOWN_ID = '0190a000-0000-7000-8000-000000000000';
const ACME_KEY = 'acme-3f9c1e7a5b2d4c6e8f0a';
const GLOBEX_KEY = 'globex-9b8a7c6d5e4f3a2b1c0d';

describe.each(storages)('Export and import on %s storage (e2e)', (_storage, createDatabase) => {
  let app: NestExpressApplication;
  let database: TestDatabase | undefined;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());

  const start = async (env: Record<string, string> = {}) => {
    app = await createTestApp({
      llm,
      env: { RATE_LIMIT: '0', ...(database && { DATABASE_URL: database.url }), ...env },
    });
  };
  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    database = createDatabase ? await createDatabase() : undefined;
    await start();
  });
  afterEach(async () => {
    await app.close();
    await database?.drop();
    jest.restoreAllMocks();
  });

  const newChat = async (body: object = {}) =>
    ((await http().post('/chats').send(body).expect(201)).body as ChatDto).id;
  const say = async (chatId: string, content: string, parentId?: string | null) =>
    (await http().post(`/chats/${chatId}/messages`).send({ content, parentId }).expect(201)).body as TurnDto;
  /** A turn, plain or streamed: its reply and, streamed, the final event's name and the deltas joined. */
  const turnOf = async (chatId: string, content: string, mode: string) => {
    if (mode === 'plain') return { reply: (await say(chatId, content)).assistantMessage };
    const client = await EventStreamClient.post(`${await listenOnLoopback(app)}/chats/${chatId}/messages`, { content });
    const events = await client.all();
    const final = events[events.length - 1];
    const deltas = events.filter((e) => e.event === 'delta').map((e) => e.data.content as string);
    return { reply: final.data as MessageDto, finalEvent: final.event, deltas: deltas.join('') };
  };
  const chatOf = async (chatId: string) => (await http().get(`/chats/${chatId}`).expect(200)).body as ChatDto;
  const messagesOf = async (chatId: string, branch: 'current' | 'all' = 'current') =>
    (await http().get(`/chats/${chatId}/messages?branch=${branch}&limit=1000`).expect(200)).body.data as MessageDto[];
  const exportOf = async (chatId: string) =>
    (await http().get(`/chats/${chatId}/export`).expect(200)).body as ExportDocumentDto;
  const importing = (body: object) => http().post('/chats/import').send(body);
  const chatIds = async () =>
    ((await http().get('/chats?limit=100').expect(200)).body.data as ChatDto[]).map((c) => c.id);
  const contents = (messages: { content: string }[]) => messages.map((m) => m.content);
  /** What the LLM was last sent, without the system prompt. */
  const lastContext = () => llm.calls[llm.calls.length - 1].request.messages.slice(1).map((m) => m.content);

  describe('export', () => {
    it('should export the chat and every message of every branch by seq', async () => {
      const chatId = await newChat({ title: 'Lisbon', metadata: { plan: 'pro' } });
      const first = await say(chatId, 'Plan a day');
      await say(chatId, 'Add a museum');
      await say(chatId, 'Add a beach', first.assistantMessage.id);

      const response = await http().get(`/chats/${chatId}/export`).expect(200);
      expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(response.body).toEqual({
        format: 'konko.chat.v1',
        chat: await chatOf(chatId),
        messages: await messagesOf(chatId, 'all'),
      });
      expect(response.body.messages.map((m: MessageDto) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it('should export the title and the current branch as Markdown, a section a message', async () => {
      const chatId = await newChat({ title: 'Lisbon\nin May' });
      const first = await say(chatId, 'Plan a day');
      await say(chatId, 'Add a museum');
      await say(chatId, 'Add a *beach*', first.assistantMessage.id);

      const response = await http().get(`/chats/${chatId}/export?format=markdown`).expect(200);
      expect(response.headers['content-type']).toBe('text/markdown; charset=utf-8');
      expect(response.text).toBe(
        [
          '# Lisbon in May',
          '## User\n\n> Plan a day',
          '## Assistant\n\n> reply to: Plan a day',
          '## User\n\n> Add a *beach*',
          '## Assistant\n\n> reply to: Add a *beach*\n',
        ].join('\n\n'),
      );
      const untitled = await newChat();
      expect((await http().get(`/chats/${untitled}/export?format=markdown`).expect(200)).text).toBe(
        '# Untitled chat\n',
      );
      const stopped = (await importing(branchedDocument()).expect(201)).body as ChatDto;
      const stoppedReply = (await messagesOf(stopped.id, 'all'))[3];
      await http().patch(`/chats/${stopped.id}`).send({ currentMessageId: stoppedReply.id }).expect(200);
      expect((await http().get(`/chats/${stopped.id}/export?format=markdown`).expect(200)).text).toContain(
        '## User\n\n> Add a museum\n\n## Assistant (incomplete)\n\n\n',
      );
    });

    it('should keep each message of the Markdown export in its own section, whatever Markdown it holds', async () => {
      const messages = [
        { role: 'user', content: '# heading\n\n## User\nfake' },
        { role: 'assistant', content: 'Setext\n===\n\nand\n---\n\n## Assistant\n' },
        { role: 'user', content: '```js\nunclosed fence\n## User' },
        { role: 'assistant', content: '````md\n```\n## Assistant\n```\n````\n~~~~~\n## User' },
        { role: 'user', content: '<!--\n## User\n\n<pre>\n\n## Assistant' },
        { role: 'assistant', content: 'a line\r## User\r\nafter lone CRs\r\r   ## indented\n    ## code' },
        { role: 'user', content: '> quoted\n## User\n\n- item\n\n  ## in the item' },
      ];
      const title = 'C# ## notes\n## User #';
      const chat = (await importing({ title, messages }).expect(201)).body as ChatDto;

      const markdown = (await http().get(`/chats/${chat.id}/export?format=markdown`).expect(200)).text;
      // In CommonMark a line that starts with `>` belongs to a block quote, and a block quote ends
      // only at a line that does not: if every other line is blank or one of the export's own
      // headings, no content can open, close or head a section of the export.
      const lines = markdown.split(/\r\n|\r|\n/);
      const ownLines = lines.filter((line) => line !== '' && !line.startsWith('>'));
      expect(ownLines).toEqual([
        '# C\\# \\#\\# notes \\#\\# User \\#',
        ...messages.map(({ role }) => (role === 'user' ? '## User' : '## Assistant')),
      ]);
      // Each section's quote, unquoted, is the message (line breaks as \n).
      const unquoted = (section: string) =>
        section
          .split('\n')
          .filter((line) => line.startsWith('>'))
          .map((line) => line.replace(/^> ?/, ''))
          .join('\n');
      expect(
        markdown
          .split(/^## .*$/m)
          .slice(1)
          .map(unquoted),
      ).toEqual(messages.map(({ content }) => content.replace(/\r\n?/g, '\n')));
    });

    it('should answer 404 for an unknown chat and 422 for an unknown format', async () => {
      for (const path of [`/chats/${UNKNOWN_ID}/export`, `/chats/not-a-uuid/export?format=markdown`]) {
        const response = await http().get(path).expect(404);
        expect(response.body.type).toBe('urn:konko:problem:chat-not-found');
      }
      const chatId = await newChat();
      const response = await http().get(`/chats/${chatId}/export?format=pdf`).expect(422);
      expect(response.body.errors).toEqual([{ field: 'format', message: expect.stringContaining('json, markdown') }]);
    });

    it('should stream every chat once, newest first, one export document a line, reading a page at a time', async () => {
      const repository = app.get(ChatRepository);
      const listChats = jest.spyOn(repository, 'listChats');
      const listMessages = jest.spyOn(repository, 'listMessages');
      const created: string[] = [];
      for (let i = 0; i < EXPORT_PAGE.chats * 2 + 3; i++) created.push(await newChat({ title: `chat ${i}` }));
      await say(created[0], 'oldest');
      await say(created[created.length - 1], 'newest');

      const response = await http().get('/export').expect(200);
      expect(response.headers['content-type']).toBe('application/x-ndjson; charset=utf-8');
      expect(response.text.endsWith('\n')).toBe(true);
      const documents = response.text
        .slice(0, -1)
        .split('\n')
        .map((line) => JSON.parse(line) as ExportDocumentDto);
      expect(documents.map((d) => d.chat.id)).toEqual([...created].reverse());
      expect(documents[0]).toEqual(await exportOf(created[created.length - 1]));
      expect(contents(documents[documents.length - 1].messages)).toEqual(['oldest', 'reply to: oldest']);

      const readsOfChats = listChats.mock.calls.map(([, page]) => page.limit);
      expect(readsOfChats.length).toBeGreaterThanOrEqual(3);
      expect(Math.max(...readsOfChats)).toBeLessThanOrEqual(EXPORT_PAGE.chats);
      expect(Math.max(...listMessages.mock.calls.map(([, page]) => page.limit))).toBeLessThanOrEqual(
        EXPORT_PAGE.messages,
      );
    });

    it('should page a chat of more messages than a page', async () => {
      const repository = app.get(ChatRepository);
      const messages = Array.from({ length: EXPORT_PAGE.messages + 2 }, (_, i) => ({
        role: i % 2 === 0 ? 'user' : 'assistant',
        content: `message ${i}`,
      }));
      const chat = (await importing({ messages }).expect(201)).body as ChatDto;
      const listMessages = jest.spyOn(repository, 'listMessages');

      const exported = await exportOf(chat.id);
      expect(contents(exported.messages)).toEqual(contents(messages));
      expect(listMessages.mock.calls.map(([, page]) => page.limit)).toEqual([EXPORT_PAGE.messages, 2]);
      const markdown = (await http().get(`/chats/${chat.id}/export?format=markdown`).expect(200)).text;
      expect(markdown.match(/^## /gm)).toHaveLength(messages.length);
      expect(markdown.endsWith(`message ${messages.length - 1}\n`)).toBe(true);
    });

    describe('of a chat deleted while it is exported', () => {
      /** Deletes the chat just before the export's `read`th read of its messages (1 for the first). */
      const deleteBeforeRead = (chatId: string, read: number) => {
        jest.restoreAllMocks();
        const repository = app.get(ChatRepository);
        const listMessages = repository.listMessages.bind(repository);
        const listBranch = repository.listBranch.bind(repository);
        let reads = 0;
        const deleteIfDue = async (key: ChatKey) => {
          if (key.chatId === chatId && ++reads === read) await repository.deleteChat(key);
        };
        jest.spyOn(repository, 'listMessages').mockImplementation(async (key, page) => {
          await deleteIfDue(key);
          return listMessages(key, page);
        });
        jest.spyOn(repository, 'listBranch').mockImplementation(async (key, page) => {
          await deleteIfDue(key);
          return listBranch(key, page);
        });
      };

      it.each(['json', 'markdown'])(
        'should answer 404 when it is gone before its messages are read (%s)',
        async (format) => {
          const chatId = await newChat();
          await say(chatId, 'Hello');
          deleteBeforeRead(chatId, 1);
          const response = await http().get(`/chats/${chatId}/export?format=${format}`).expect(404);
          expect(response.body.type).toBe('urn:konko:problem:chat-not-found');
        },
      );

      it('should leave it out of GET /export, so that every line imports', async () => {
        const kept = await newChat({ title: 'kept' });
        await say(kept, 'Stay');
        const deleted = await newChat({ title: 'deleted' });
        await say(deleted, 'Go');
        deleteBeforeRead(deleted, 1);
        const text = (await http().get('/export').expect(200)).text;
        const documents = text
          .slice(0, -1)
          .split('\n')
          .map((line) => JSON.parse(line) as ExportDocumentDto);
        expect(documents.map((d) => d.chat.title)).toEqual(['kept']);
        jest.restoreAllMocks();
        await importing(documents[0]).expect(201);
      });

      it('should cut the connection when it is gone between two pages of its messages', async () => {
        const messages = Array.from({ length: EXPORT_PAGE.messages + 2 }, (_, i) => ({
          role: i % 2 === 0 ? 'user' : 'assistant',
          content: `message ${i}`,
        }));
        const chat = (await importing({ messages }).expect(201)).body as ChatDto;
        deleteBeforeRead(chat.id, 2);
        await expect(http().get(`/chats/${chat.id}/export`)).rejects.toThrow();
        const other = (await importing({ messages }).expect(201)).body as ChatDto;
        deleteBeforeRead(other.id, 2);
        await expect(http().get(`/chats/${other.id}/export?format=markdown`)).rejects.toThrow();
        deleteBeforeRead((await importing({ messages }).expect(201)).body.id, 2);
        await expect(http().get('/export')).rejects.toThrow();
        // The service's failure, not a client that left.
        const metrics = (await http().get('/metrics').expect(200)).text;
        expect(metrics).toContain('http_request_duration_seconds_count{method="GET",route="/export",status="500"} 1');
        expect(metrics).toContain(
          'http_request_duration_seconds_count{method="GET",route="/chats/:chatId/export",status="500"} 2',
        );
      });
    });

    it('should answer an empty body when the caller has no chats', async () => {
      expect((await http().get('/export').expect(200)).text).toBe('');
    });
  });

  describe('a reply longer than an import takes', () => {
    /** 10 emoji (two UTF-16 units each), then 400 deltas of 100 distinct words: 400,010 characters. */
    const emoji = '\u{1F600}'.repeat(10);
    const wordsOf = (delta: number) =>
      Array.from({ length: 100 }, (_, k) => `w${(delta * 100 + k).toString(36).padStart(8, '0')} `).join('');
    const full = emoji + Array.from({ length: 400 }, (_, delta) => wordsOf(delta)).join('');
    const cut = [...full].slice(0, 256_000).join('');
    /** A text as a failure shows it: the reply is too long to print. */
    const shown = (text: string) => ({ characters: [...text].length, end: text.slice(-30), isTheCut: text === cut });
    let sent: number;
    let finished: boolean;

    beforeEach(() => {
      sent = 0;
      finished = false;
      llm.respond = () =>
        (async function* () {
          yield { type: 'delta' as const, content: emoji };
          for (; sent < 400; sent++) yield { type: 'delta' as const, content: wordsOf(sent) };
          yield { type: 'finish' as const, model: 'fake-model', usage: { promptTokens: 1, completionTokens: 100_000 } };
          finished = true;
        })();
    });

    it.each(['plain', 'streamed'])(
      'should stop it at 256,000 characters, store it incomplete, and import its export (%s)',
      async (mode) => {
        const chatId = await newChat();
        const { reply, finalEvent, deltas } = await turnOf(chatId, 'Write at length', mode);
        if (mode === 'streamed') {
          expect(finalEvent).toBe('assistant_message');
          expect(shown(deltas!)).toEqual(shown(cut));
        }

        expect(reply.status).toBe('incomplete');
        expect(shown(reply.content)).toEqual(shown(cut));
        expect(sent).toBeLessThan(400);
        expect(finished).toBe(false);
        expect((await messagesOf(chatId))[1]).toEqual(reply);
        const imported = (await importing(await exportOf(chatId)).expect(201)).body as ChatDto;
        expect(contents(await messagesOf(imported.id)).map(shown)).toEqual([shown('Write at length'), shown(cut)]);
      },
    );
  });

  describe('a reply with what no import takes', () => {
    // U+0000 and lone surrogates (one at the very end), a pair split across two deltas, and a
    // finish whose model name and token counts an import (and a counter) would refuse.
    const deltas = ['a\u0000b ', 'c\ud83d', '\ude00d ', 'e\udc00f ', 'g\ud83d'];
    const stored = 'a\uFFFDb c\u{1F600}d e\uFFFDf g\uFFFD';
    beforeEach(() => {
      llm.respond = () =>
        (async function* () {
          for (const content of deltas) yield { type: 'delta' as const, content };
          const usage = { promptTokens: -3, completionTokens: 1.5 };
          yield { type: 'finish' as const, model: 'm'.repeat(201), usage };
        })();
    });

    it.each(['plain', 'streamed'])(
      "should store and stream it as U+FFFD, keep a split pair whole, store the chat's model and no usage, and import its export (%s)",
      async (mode) => {
        const chatId = await newChat({ model: 'llama3' });
        const { reply, deltas } = await turnOf(chatId, 'Say odd things', mode);
        if (mode === 'streamed') expect(deltas).toBe(stored);

        expect(reply).toMatchObject({ status: 'completed', content: stored, model: 'llama3', usage: null });
        expect((await messagesOf(chatId))[1]).toEqual(reply);
        const imported = (await importing(await exportOf(chatId)).expect(201)).body as ChatDto;
        expect(await messagesOf(imported.id)).toEqual(
          (await messagesOf(chatId)).map((message) => ({
            ...message,
            id: expect.any(String),
            chatId: imported.id,
            inReplyTo: message.inReplyTo && expect.any(String),
            parentId: message.parentId && expect.any(String),
          })),
        );
      },
    );
  });

  describe('import', () => {
    it('should import a plain list of messages as one branch, a leading system message as the system prompt', async () => {
      const response = await importing({
        title: 'From OpenAI',
        metadata: { source: 'openai' },
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Plan a day in Lisbon' },
          { role: 'assistant', content: 'Belém, then Alfama.' },
          { role: 'assistant', content: 'Or Sintra.' },
          { role: 'user', content: 'Add a museum' },
        ],
      }).expect(201);
      const chat = response.body as ChatDto;
      expect(response.headers.location).toBe(`/chats/${chat.id}`);
      expect(chat).toEqual({
        id: expect.any(String),
        title: 'From OpenAI',
        systemPrompt: 'Be brief.',
        model: 'gpt-4.1-mini',
        metadata: { source: 'openai' },
        messageCount: 4,
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
        lastMessageAt: chat.createdAt,
        currentMessageId: expect.any(String),
      });
      expect(await chatOf(chat.id)).toEqual(chat);

      const messages = await messagesOf(chat.id, 'all');
      expect(messages.map((m) => [m.seq, m.role, m.content, m.status, m.createdAt])).toEqual([
        [1, 'user', 'Plan a day in Lisbon', 'completed', chat.createdAt],
        [2, 'assistant', 'Belém, then Alfama.', 'completed', chat.createdAt],
        [3, 'assistant', 'Or Sintra.', 'completed', chat.createdAt],
        [4, 'user', 'Add a museum', 'completed', chat.createdAt],
      ]);
      expect(messages.map((m) => m.parentId)).toEqual([null, ...messages.slice(0, -1).map((m) => m.id)]);
      expect(messages.map((m) => m.inReplyTo)).toEqual([null, messages[0].id, null, null]);
      expect(chat.currentMessageId).toBe(messages[3].id);
      expect(messages.map((m) => m.id)).toEqual(messages.map((m) => m.id).sort());

      await say(chat.id, 'And a beach?');
      expect(llm.calls[0].request.messages[0]).toEqual({ role: 'system', content: 'Be brief.' });
      expect(lastContext()).toEqual([...contents(messages), 'And a beach?']);
    });

    it('should keep branches, statuses, times and the current branch of an export document', async () => {
      const document = branchedDocument();
      const chat = (await importing(document).expect(201)).body as ChatDto;
      expect(chat).toMatchObject({
        title: 'Lisbon',
        systemPrompt: 'Be brief.',
        model: 'llama3',
        metadata: { customerId: 'c_42' },
        messageCount: 8,
        createdAt: '2025-12-31T09:00:00.000Z',
        lastMessageAt: '2026-01-08T10:00:00.000Z',
      });
      expect(chat.id).not.toBe(document.chat.id);
      expect(new Date(chat.updatedAt).getTime()).toBeGreaterThan(new Date(document.chat.updatedAt).getTime());

      const exported = await exportOf(chat.id);
      expect(withoutIds(exported)).toEqual(withoutIds(document));
      expect(exported.messages.every((m) => !document.messages.some((d) => d.id === m.id))).toBe(true);
      expect(contents(await messagesOf(chat.id))).toEqual([
        'Plan a day in Lisbon',
        'Belém, then Alfama.',
        'Add a beach',
        'Cascais is a train ride away.',
      ]);

      // The branches work as the chat's own: a send follows the current branch, a switch finds the newest below.
      await say(chat.id, 'How long by train?');
      expect(lastContext()).toEqual([...contents(await messagesOf(chat.id)).slice(0, 4), 'How long by train?']);
      const all = await messagesOf(chat.id, 'all');
      const switched = await http().patch(`/chats/${chat.id}`).send({ currentMessageId: all[2].id }).expect(200);
      expect(switched.body.currentMessageId).toBe(all[3].id);
      await say(chat.id, 'After the stopped reply');
      expect(lastContext()).toEqual([
        'Plan a day in Lisbon',
        'Belém, then Alfama.',
        'Add a museum',
        '',
        'After the stopped reply',
      ]);
      await say(chat.id, 'Plan a day in Braga', null);
      expect((await chatOf(chat.id)).messageCount).toBe(14);
    });

    it("should make the current message the newest below the document's, as switching to it would", async () => {
      const document = branchedDocument();
      document.chat.currentMessageId = document.messages[0].id;
      const chat = (await importing(document).expect(201)).body as ChatDto;
      expect(contents(await messagesOf(chat.id))).toEqual(['Plan a day in Lisbon', 'Start at']);

      document.chat.currentMessageId = null;
      const latest = (await importing(document).expect(201)).body as ChatDto;
      expect(contents(await messagesOf(latest.id))).toEqual(['Plan a day in Porto']);
    });

    it('should import an empty chat, and a chat whose messages are all in one branch', async () => {
      const empty = (await importing({ messages: [] }).expect(201)).body as ChatDto;
      expect(empty).toMatchObject({ title: null, messageCount: 0, currentMessageId: null, lastMessageAt: null });
      expect((await exportOf(empty.id)).messages).toEqual([]);
      const onlySystem = (await importing({ messages: [{ role: 'system', content: 'Be kind.' }] }).expect(201))
        .body as ChatDto;
      expect(onlySystem).toMatchObject({ systemPrompt: 'Be kind.', messageCount: 0 });
      await say(empty.id, 'hello');
      expect(await chatOf(empty.id)).toMatchObject({ messageCount: 2 });
    });

    it('should create one chat for repeats with the same Idempotency-Key, and refuse the key for another body', async () => {
      const document = branchedDocument();
      const first = await importing(document).set('Idempotency-Key', 'import-1').expect(201);
      const repeat = await importing(document).set('Idempotency-Key', 'import-1').expect(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      expect(repeat.headers['idempotent-replayed']).toBe('true');
      expect(repeat.headers.location).toBe(first.headers.location);
      expect(repeat.body).toEqual(first.body);
      const other = await importing({ messages: [] }).set('Idempotency-Key', 'import-1').expect(422);
      expect(other.body.type).toBe('urn:konko:problem:idempotency-key-reused');
      // The key is the import's own: creating a chat with it is another request.
      await http().post('/chats').set('Idempotency-Key', 'import-1').expect(201);
      expect(await chatIds()).toHaveLength(2);
    });

    it('should refuse to regenerate an imported reply that answers no user message, and regenerate the others', async () => {
      const imported = await importing({
        messages: [
          { role: 'assistant', content: 'Hi! How can I help?' },
          { role: 'user', content: 'Weather?' },
          { role: 'assistant', content: 'Sunny.' },
          { role: 'assistant', content: 'And warm.' },
        ],
      }).expect(201);
      const chatId = (imported.body as ChatDto).id;
      const [greeting, question, answer, afterAnswer] = await messagesOf(chatId, 'all');
      const regenerate = (messageId: string, query = '') =>
        http().post(`/chats/${chatId}/messages/${messageId}/regenerate${query}`);

      for (const reply of [greeting, afterAnswer]) {
        for (const query of ['', '?stream=true']) {
          const refused = await regenerate(reply.id, query).expect(422);
          expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
          expect(refused.body).toMatchObject({
            type: 'urn:konko:problem:reply-answers-no-message',
            title: 'The reply answers no user message',
            status: 422,
            detail: expect.stringContaining(`Message ${reply.id} is a reply that answers no user message`),
            errors: [{ field: 'messageId', message: 'a reply that answers no user message' }],
          });
        }
      }
      expect(llm.calls).toHaveLength(0);
      expect((await chatOf(chatId)).messageCount).toBe(4);

      const again = (await regenerate(answer.id).expect(201)).body as TurnDto;
      expect(again.userMessage).toEqual(question);
      expect(again.assistantMessage).toMatchObject({ seq: 5, inReplyTo: question.id, parentId: question.id });
    });

    it('should refuse to regenerate a stored reply that answers a reply, as imports took before they checked', async () => {
      const [question, answer, afterAnswer] = [uuidv7(), uuidv7(), uuidv7()];
      const message = (id: string, role: 'user' | 'assistant', parentId: string | null) => ({
        id,
        role,
        content: id,
        status: 'completed' as const,
        inReplyTo: parentId,
        parentId,
        model: null,
        usage: null,
        tokenCount: 3,
        createdAt: new Date().toISOString(),
      });
      const chat = await app.get(ChatRepository).importChat({
        chat: { tenantId: OPEN_TENANT_ID, title: null, systemPrompt: null, model: 'gpt-4.1-mini', metadata: {} },
        createdAt: new Date(),
        messages: [
          message(question, 'user', null),
          message(answer, 'assistant', question),
          message(afterAnswer, 'assistant', answer),
        ],
        currentMessageId: afterAnswer,
      });
      expect((await messagesOf(chat.id, 'all')).map((m) => m.inReplyTo)).toEqual([null, question, answer]);

      const refused = await http().post(`/chats/${chat.id}/messages/${afterAnswer}/regenerate`).expect(422);
      expect(refused.body.type).toBe('urn:konko:problem:reply-answers-no-message');
      expect(llm.calls).toHaveLength(0);
    });

    it('should import back the export of a chat whose replies came back empty or blank', async () => {
      // As a reasoning model answers when its tokens run out: a finish after no text, or after white space.
      const replies = ['', ' \n'];
      llm.respond = (_request, call) =>
        (async function* () {
          if (replies[call - 1]) yield { type: 'delta' as const, content: replies[call - 1] };
          yield { type: 'finish' as const, model: 'o4-mini', usage: null };
        })();
      const chatId = await newChat();
      for (const reply of replies) expect((await say(chatId, 'Think hard')).assistantMessage.content).toBe(reply);
      const document = await exportOf(chatId);
      expect(document.messages.map((m) => [m.role, m.status, m.content])).toEqual([
        ['user', 'completed', 'Think hard'],
        ['assistant', 'completed', ''],
        ['user', 'completed', 'Think hard'],
        ['assistant', 'completed', ' \n'],
      ]);
      const imported = (await importing(document).expect(201)).body as ChatDto;
      expect(withoutIds(await exportOf(imported.id))).toEqual(withoutIds(document));
      const list = document.messages.map(({ role, content }) => ({ role, content }));
      const fromList = (await importing({ messages: list }).expect(201)).body as ChatDto;
      expect(contents(await messagesOf(fromList.id))).toEqual(contents(list));
    });

    it('should import the export of messages as long as a send takes, counting characters as code points', async () => {
      llm.respond = () => ({ content: 'Noted.', model: 'fake-model', usage: { promptTokens: 1, completionTokens: 1 } });
      const chatId = await newChat();
      // 32,000 characters each: 32,001, 32,000 and 64,000 UTF-16 code units.
      for (const content of ['😀' + 'a'.repeat(31_999), '❤️'.repeat(16_000), '😀'.repeat(32_000)]) {
        await say(chatId, content);
      }
      const document = await exportOf(chatId);
      const imported = (await importing(document).expect(201)).body as ChatDto;
      expect(withoutIds(await exportOf(imported.id))).toEqual(withoutIds(document));
    });

    it('should import the export of a reply longer than a send may be', async () => {
      const long = 'All of it. '.repeat(4_000);
      llm.respond = () => ({ content: long, model: 'fake-model', usage: { promptTokens: 1, completionTokens: 9_000 } });
      const chatId = await newChat();
      await say(chatId, 'Tell me everything.');
      const document = await exportOf(chatId);
      expect(document.messages[1].content).toBe(long);
      const imported = (await importing(document).expect(201)).body as ChatDto;
      expect(withoutIds(await exportOf(imported.id))).toEqual(withoutIds(document));
      const list = document.messages.map(({ role, content }) => ({ role, content }));
      await importing({ messages: list }).expect(201);
    });

    it('should keep metadata keys that JavaScript objects have of their own, on create, patch, import and export', async () => {
      // Object.prototype's names (`constructor`, `toString`, `__proto__` …) and others JavaScript reads.
      const keys = [...Object.getOwnPropertyNames(Object.prototype), 'prototype', 'toJSON', 'then'];
      const labels = (suffix: string) => Object.fromEntries(keys.map((key) => [key, `${key} ${suffix}`]));
      const entries = (metadata: object) => Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : 1));
      expect(keys).toContain('__proto__');

      const created = (
        await http()
          .post('/chats')
          .send({ metadata: labels('created') })
          .expect(201)
      ).body as ChatDto;
      expect(entries(created.metadata)).toEqual(entries(labels('created')));
      expect(entries((await chatOf(created.id)).metadata)).toEqual(entries(labels('created')));
      const patched = await http()
        .patch(`/chats/${created.id}`)
        .send({ metadata: labels('patched') })
        .expect(200);
      expect(entries(patched.body.metadata)).toEqual(entries(labels('patched')));
      expect(entries((await chatOf(created.id)).metadata)).toEqual(entries(labels('patched')));

      const imported = (await importing({ metadata: labels('imported'), messages: [] }).expect(201)).body as ChatDto;
      expect(entries(imported.metadata)).toEqual(entries(labels('imported')));
      const again = (await importing(await exportOf(created.id)).expect(201)).body as ChatDto;
      expect(entries((await exportOf(again.id)).chat.metadata)).toEqual(entries(labels('patched')));
    });
  });

  it("should export, list and import only the caller's chats: another tenant's chat is not found", async () => {
    await app.close();
    await start({ API_KEYS: `acme:${ACME_KEY},globex:${GLOBEX_KEY}` });
    const as = (key: string) => ({ Authorization: `Bearer ${key}` });
    const importAs = async (key: string, body: object, idempotencyKey = 'same-key') =>
      (await importing(body).set(as(key)).set('Idempotency-Key', idempotencyKey).expect(201)).body as ChatDto;
    const exportAllAs = async (key: string) =>
      (await http().get('/export').set(as(key)).expect(200)).text
        .split('\n')
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as ExportDocumentDto).chat.id);

    const acme = await importAs(ACME_KEY, branchedDocument());
    const globex = await importAs(GLOBEX_KEY, branchedDocument());
    expect(globex.id).not.toBe(acme.id);
    expect(await exportAllAs(ACME_KEY)).toEqual([acme.id]);
    expect(await exportAllAs(GLOBEX_KEY)).toEqual([globex.id]);
    for (const path of [`/chats/${acme.id}/export`, `/chats/${acme.id}/export?format=markdown`]) {
      const response = await http().get(path).set(as(GLOBEX_KEY)).expect(404);
      expect(response.body).toMatchObject({
        type: 'urn:konko:problem:chat-not-found',
        detail: `No chat has the id ${acme.id}.`,
      });
      await http().get(path).set(as(ACME_KEY)).expect(200);
    }
    const acmeChats = (await http().get('/chats').set(as(ACME_KEY)).expect(200)).body.data as ChatDto[];
    expect(acmeChats.map((c) => c.id)).toEqual([acme.id]);
  });
});

/** Checks run before anything is stored, the same on every storage. */
describe('Import validation (e2e)', () => {
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());
  const importing = (body: object) => http().post('/chats/import').send(body);
  const chatIds = async () =>
    ((await http().get('/chats?limit=100').expect(200)).body.data as ChatDto[]).map((c) => c.id);

  beforeAll(async () => {
    app = await createTestApp({ env: { RATE_LIMIT: '0' } });
  });
  afterAll(() => app.close());

  it.each([
    [
      'a role a plain list does not know',
      (m: object[]) => [...m.slice(0, 12), { role: 'tool', content: 'x' }],
      'messages[12].role',
    ],
    [
      'a system message after the first',
      (m: object[]) => [...m, { role: 'system', content: 'x' }],
      'messages[13].role',
    ],
    ['blank content', (m: object[]) => [...m.slice(0, 5), { role: 'user', content: '  ' }], 'messages[5].content'],
    [
      'content over 32,000 characters',
      (m: object[]) => [{ role: 'user', content: 'x'.repeat(32_001) }, ...m],
      'messages[0].content',
    ],
    [
      'a reply over 256,000 characters',
      (m: object[]) => [...m.slice(0, 1), { role: 'assistant', content: 'x '.repeat(128_001) }],
      'messages[1].content',
    ],
    [
      'an unknown field in a message',
      (m: object[]) => [...m.slice(0, 3), { role: 'user', content: 'x', name: 'bob' }],
      'messages[3].name',
    ],
    ['a message that is not an object', (m: object[]) => [...m.slice(0, 2), 'hello'], 'messages[2]'],
    [
      'a system prompt over 8,000 characters',
      (m: object[]) => [{ role: 'system', content: 'x'.repeat(8001) }, ...m],
      'messages[0].content',
    ],
    [
      'more than 10,000 messages',
      (m: object[]) => Array.from({ length: 10_001 }, (_, i) => m[i % m.length]),
      'messages',
    ],
  ])('should refuse a plain list with %s, naming the field, and store nothing', async (_case, change, field) => {
    await http().post('/chats').expect(201);
    const before = await chatIds();
    const messages = Array.from({ length: 13 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `m${i}` }));
    const response = await importing({ messages: change(messages) }).expect(422);
    expect(response.body).toMatchObject({ type: 'urn:konko:problem:validation-failed' });
    expect(response.body.errors).toEqual([{ field, message: expect.any(String) }]);
    expect(response.body.detail).toBe(`${field}: ${response.body.errors[0].message}`);
    expect(await chatIds()).toEqual(before);
  });

  it.each([
    ['another format', (d: ExportDocumentDto) => ({ ...d, format: 'konko.chat.v2' }), 'format'],
    [
      'a parent that comes later',
      (d: ExportDocumentDto) => setMessage(d, 1, { parentId: d.messages[2].id }),
      'messages[1].parentId',
    ],
    [
      'a parent of another chat',
      (d: ExportDocumentDto) => setMessage(d, 4, { parentId: UNKNOWN_ID }),
      'messages[4].parentId',
    ],
    [
      'a reply to an unknown message',
      (d: ExportDocumentDto) => setMessage(d, 5, { inReplyTo: UNKNOWN_ID }),
      'messages[5].inReplyTo',
    ],
    [
      'a reply to a reply',
      (d: ExportDocumentDto) => setMessage(d, 5, { inReplyTo: d.messages[1].id }),
      'messages[5].inReplyTo',
    ],
    ['an id used twice', (d: ExportDocumentDto) => setMessage(d, 2, { id: d.messages[0].id }), 'messages[2].id'],
    ['an empty user message', (d: ExportDocumentDto) => setMessage(d, 0, { content: '' }), 'messages[0].content'],
    [
      'an incomplete user message',
      (d: ExportDocumentDto) => setMessage(d, 0, { status: 'incomplete' }),
      'messages[0].status',
    ],
    ['a system message', (d: ExportDocumentDto) => setMessage(d, 0, { role: 'system' }), 'messages[0].role'],
    ['a bad time', (d: ExportDocumentDto) => setMessage(d, 6, { createdAt: 'yesterday' }), 'messages[6].createdAt'],
    [
      'a day its month does not have',
      (d: ExportDocumentDto) => setMessage(d, 6, { createdAt: '2026-04-31T10:00:00.000Z' }),
      'messages[6].createdAt',
    ],
    [
      'February 29 of a common year',
      (d: ExportDocumentDto) => setMessage(d, 2, { createdAt: '2100-02-29T10:00:00Z' }),
      'messages[2].createdAt',
    ],
    [
      'the hour 24',
      (d: ExportDocumentDto) => ({ ...d, chat: { ...d.chat, createdAt: '2025-12-31T24:00:00Z' } }),
      'chat.createdAt',
    ],
    [
      'negative usage',
      (d: ExportDocumentDto) => setMessage(d, 1, { usage: { promptTokens: -1, completionTokens: 1 } }),
      'messages[1].usage.promptTokens',
    ],
    [
      'an unknown current message',
      (d: ExportDocumentDto) => ({ ...d, chat: { ...d.chat, currentMessageId: UNKNOWN_ID } }),
      'chat.currentMessageId',
    ],
    [
      'a title over 200 characters',
      (d: ExportDocumentDto) => ({ ...d, chat: { ...d.chat, title: 'x'.repeat(201) } }),
      'chat.title',
    ],
    [
      '17 metadata keys',
      (d: ExportDocumentDto) => ({
        ...d,
        chat: { ...d.chat, metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
      }),
      'chat.metadata',
    ],
    ['no chat time', (d: ExportDocumentDto) => ({ ...d, chat: { ...d.chat, createdAt: undefined } }), 'chat.createdAt'],
    ['an unknown field', (d: ExportDocumentDto) => ({ ...d, extra: true }), 'extra'],
  ])('should refuse an export document with %s, naming the field, and store nothing', async (_case, change, field) => {
    const before = await chatIds();
    const response = await importing(change(branchedDocument())).expect(422);
    expect(response.body.errors).toEqual([{ field, message: expect.any(String) }]);
    expect(await chatIds()).toEqual(before);
  });

  it('should keep the times of a document as written, leap days and offsets included', async () => {
    const times = ['2024-02-29T23:59:59.999Z', '2000-02-29T00:00:00+01:00', '0004-02-29T12:00:00Z'];
    const document = times.reduce((d, createdAt, i) => setMessage(d, i, { createdAt }), branchedDocument());
    const chat = (await importing(document).expect(201)).body as ChatDto;
    const exported = (await http().get(`/chats/${chat.id}/export`).expect(200)).body as ExportDocumentDto;
    expect(exported.messages.slice(0, 3).map((m) => m.createdAt)).toEqual([
      '2024-02-29T23:59:59.999Z',
      '2000-02-28T23:00:00.000Z',
      '0004-02-29T12:00:00.000Z',
    ]);
  });

  it('should hold sends, chats and imports to the same limits, counted in code points', async () => {
    const before = await chatIds();
    const chat = (await http().post('/chats').expect(201)).body as ChatDto;
    // One character over: 32,001 code points, whichever way UTF-16 or a variation selector counts.
    for (const content of ['😀' + 'a'.repeat(32_000), '❤️'.repeat(16_000) + 'a']) {
      const sent = await http().post(`/chats/${chat.id}/messages`).send({ content }).expect(422);
      expect(sent.body.errors).toEqual([
        { field: 'content', message: 'content must be shorter than or equal to 32000 characters' },
      ]);
      const imported = await importing({ messages: [{ role: 'user', content }] }).expect(422);
      expect(imported.body.errors).toEqual([
        { field: 'messages[0].content', message: 'content must be shorter than or equal to 32000 characters' },
      ]);
    }
    const tooLong = { title: '❤️'.repeat(100) + 'a', metadata: { ['❤️'.repeat(32) + 'a']: 'v' } };
    const atTheLimit = { title: '😀'.repeat(200), metadata: { ['😀'.repeat(64)]: '😀'.repeat(512) } };
    for (const [field, value] of Object.entries(tooLong)) {
      const created = await http()
        .post('/chats')
        .send({ [field]: value })
        .expect(422);
      const patched = await http()
        .patch(`/chats/${chat.id}`)
        .send({ [field]: value })
        .expect(422);
      const imported = await importing({ [field]: value, messages: [] }).expect(422);
      for (const response of [created, patched, imported]) {
        expect(response.body.errors).toEqual([{ field, message: expect.any(String) }]);
      }
    }
    expect(await chatIds()).toEqual([chat.id, ...before]);
    const created = (await http().post('/chats').send(atTheLimit).expect(201)).body as ChatDto;
    await http().patch(`/chats/${chat.id}`).send(atTheLimit).expect(200);
    const imported = (await importing({ ...atTheLimit, messages: [] }).expect(201)).body as ChatDto;
    const patched = (await http().get(`/chats/${chat.id}`).expect(200)).body as ChatDto;
    for (const { title, metadata } of [created, imported, patched]) {
      expect({ title, metadata }).toEqual(atTheLimit);
    }
  });

  it('should refuse a metadata value that is not a string under any key, `__proto__` included, on create, patch and import', async () => {
    const chat = (
      await http()
        .post('/chats')
        .send({ metadata: { plan: 'pro' } })
        .expect(201)
    ).body as ChatDto;
    const before = await chatIds();
    for (const key of ['__proto__', 'constructor', 'toString']) {
      // Parsed from JSON, as a body is: the key is the object's own, not its prototype.
      const metadata = JSON.parse(`{"${key}":{"polluted":"yes"}}`) as object;
      const document = branchedDocument();
      const refusals = [
        [await http().post('/chats').send({ metadata }), 'metadata'],
        [await http().patch(`/chats/${chat.id}`).send({ metadata }), 'metadata'],
        [await importing({ metadata, messages: [] }), 'metadata'],
        [await importing({ ...document, chat: { ...document.chat, metadata } }), 'chat.metadata'],
      ] as const;
      for (const [response, field] of refusals) {
        expect(response.status).toBe(422);
        expect(response.body.errors).toEqual([{ field, message: expect.stringContaining('string values') }]);
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await chatIds()).toEqual(before);
    expect((await http().get(`/chats/${chat.id}`).expect(200)).body.metadata).toEqual({ plan: 'pro' });
  });
});

/** The document with one message's fields changed. */
function setMessage(document: ExportDocumentDto, index: number, fields: object): ExportDocumentDto {
  const messages = document.messages.map((m, i) => (i === index ? { ...m, ...fields } : m)) as MessageDto[];
  return { ...document, messages };
}

describe('Import body limit (e2e)', () => {
  let app: NestExpressApplication;
  afterEach(() => app.close());

  it('should take import bodies up to IMPORT_BODY_LIMIT, over BODY_LIMIT, and answer 413 past it', async () => {
    app = await createTestApp({ env: { BODY_LIMIT: '1kb', IMPORT_BODY_LIMIT: '8kb' } });
    const http = () => request(app.getHttpServer());
    const messages = (count: number) =>
      Array.from({ length: count }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'x'.repeat(90) }));
    await http()
      .post('/chats/import')
      .send({ messages: messages(40) })
      .expect(201);
    await http()
      .post('/chats')
      .send({ title: 'x'.repeat(200), metadata: { k: 'v'.repeat(500), l: 'w'.repeat(500) } })
      .expect(413);

    const tooLarge = await http()
      .post('/chats/import')
      .send({ messages: messages(100) })
      .expect(413);
    expect(tooLarge.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(tooLarge.body).toMatchObject({
      status: 413,
      detail: 'The request body is larger than the service accepts.',
    });
    expect((await http().get('/chats').expect(200)).body.data).toHaveLength(1);
    await http().post('/chats/import').set('Content-Type', 'text/plain').send('{"messages":[]}').expect(415);
  });
});

describe('Export and import across storages (e2e)', () => {
  it('should export a chat imported on another storage as it was there, ids aside: memory → SQLite → PostgreSQL', async () => {
    const llm = new RecordingLlmProvider();
    const databases = await Promise.all(testDatabases().map(([, create]) => create()));
    const apps = [
      await createTestApp({ llm }),
      ...(await Promise.all(databases.map((database) => createTestApp({ llm, env: { DATABASE_URL: database.url } })))),
    ];
    try {
      const on = (app: NestExpressApplication) => request(app.getHttpServer());
      const exportOf = async (app: NestExpressApplication, chatId: string) =>
        (await on(app).get(`/chats/${chatId}/export`).expect(200)).body as ExportDocumentDto;

      // Made by turns on the first: an edit, a regeneration, a reply the upstream broke off, a switch back.
      const chatId = (await on(apps[0]).post('/chats').send({ systemPrompt: 'Be brief.' }).expect(201)).body.id;
      const say = async (content: string, parentId?: string) =>
        (await on(apps[0]).post(`/chats/${chatId}/messages`).send({ content, parentId }).expect(201)).body as TurnDto;
      const first = await say('Plan a day in Lisbon');
      const second = await say('Add a museum');
      await say('Add a beach', first.assistantMessage.id);
      await on(apps[0]).post(`/chats/${chatId}/messages/${first.userMessage.id}/regenerate`).expect(201);
      llm.respond = async () =>
        (async function* () {
          yield { type: 'delta' as const, content: 'Start at' };
          throw new LlmUpstreamError('The language model answered HTTP 500.');
        })();
      await on(apps[0]).post(`/chats/${chatId}/messages`).send({ content: 'And then?' }).expect(502);
      await on(apps[0]).patch(`/chats/${chatId}`).send({ currentMessageId: second.userMessage.id }).expect(200);

      let document = await exportOf(apps[0], chatId);
      expect(document.messages.map((m) => m.status)).toContain('incomplete');
      for (const app of apps.slice(1)) {
        const imported = (await on(app).post('/chats/import').send(document).expect(201)).body as ChatDto;
        const again = await exportOf(app, imported.id);
        expect(withoutIds(again)).toEqual(withoutIds(document));
        document = again;
      }
    } finally {
      for (const app of apps) await app.close();
      for (const database of databases) await database.drop();
    }
  });
});
