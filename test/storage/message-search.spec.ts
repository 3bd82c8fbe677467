import { ChatRepository } from '../../src/chats/chat.repository';
import { MessageSearch } from '../../src/search/message-search';
import { searchTermsOf } from '../../src/search/search-terms';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { InMemoryMessageSearch } from '../../src/storage/in-memory/in-memory-message-search';
import { SqlMessageSearch } from '../../src/storage/sql/sql-message-search';
import { readAllPages } from '../support/pages';
import { openTestRepository, testDatabases } from '../support/test-databases';
import { key, newChat, TENANT, userMessage } from './fixtures';

interface SearchUnderTest {
  repository: ChatRepository;
  search: MessageSearch;
  close(): Promise<void>;
}

const backends: [string, () => Promise<SearchUnderTest>][] = [
  [
    'memory',
    async () => {
      const repository = new InMemoryChatRepository();
      return { repository, search: new InMemoryMessageSearch(repository), close: async () => undefined };
    },
  ],
  ...testDatabases().map(([name, create]): [string, () => Promise<SearchUnderTest>] => [
    name,
    async () => {
      const database = await create();
      const opened = await openTestRepository(database);
      return {
        repository: opened.repository,
        search: new SqlMessageSearch(opened.database),
        close: async () => {
          await opened.close();
          await database.drop();
        },
      };
    },
  ]),
];

/** What every storage's search finds, for the same messages and the same queries. */
describe.each(backends)('MessageSearch on %s', (_name, open) => {
  let subject: SearchUnderTest;
  beforeEach(async () => {
    subject = await open();
  });
  afterEach(() => subject.close());

  const store = async (chatId: string, contents: string[], tenantId = TENANT) => {
    const stored = [];
    for (const content of contents) {
      stored.push(await subject.repository.appendMessage(key(chatId, tenantId), userMessage(content)));
    }
    return stored;
  };
  const find = async (q: string, { tenantId = TENANT, limit = 100 } = {}) =>
    (await subject.search.search({ tenantId, terms: searchTermsOf(q), limit })).map((hit) => hit.message.content);

  it('should find the messages that contain every word, in any case, in every chat and branch', async () => {
    const first = await subject.repository.createChat(newChat({ title: 'Orders' }));
    const second = await subject.repository.createChat(newChat());
    const [question] = await store(first.id, ['Where is my REFUND for order 1042?', 'The carrier lost the parcel.']);
    await subject.repository.appendMessage(
      key(first.id),
      userMessage('Refund the parcel, please', { parentId: question.id }),
    );
    await store(second.id, ['A refund was issued yesterday.', 'Nothing to see here.']);

    expect((await find('refund')).sort()).toEqual(
      ['A refund was issued yesterday.', 'Refund the parcel, please', 'Where is my REFUND for order 1042?'].sort(),
    );
    expect(await find('refund parcel')).toEqual(['Refund the parcel, please']);
    expect(await find('Parcel')).toHaveLength(2);
    expect(await find('refund 1042')).toEqual(['Where is my REFUND for order 1042?']);
    expect(await find('refund elephant')).toEqual([]);
    const [hit] = await subject.search.search({ tenantId: TENANT, terms: ['1042'], limit: 10 });
    expect(hit).toMatchObject({ chatTitle: 'Orders', message: { chatId: first.id, seq: 1 } });
  });

  it('should find words by their stem', async () => {
    const chat = await subject.repository.createChat(newChat());
    await store(chat.id, ['The refunds arrived', 'We refunded it', 'Refunding takes days', 'Unrelated']);
    expect((await find('refund')).sort()).toEqual(['Refunding takes days', 'The refunds arrived', 'We refunded it']);
  });

  it("should never find another tenant's messages, nor a deleted chat's", async () => {
    const mine = await subject.repository.createChat(newChat());
    const theirs = await subject.repository.createChat(newChat({ tenantId: 'tenant-b' }));
    const doomed = await subject.repository.createChat(newChat());
    await store(mine.id, ['secret plans for launch']);
    await store(theirs.id, ['secret plans of theirs'], 'tenant-b');
    await store(doomed.id, ['secret plans, deleted']);
    expect(await find('secret plans')).toHaveLength(2);

    await subject.repository.deleteChat(key(doomed.id));
    expect(await find('secret plans')).toEqual(['secret plans for launch']);
    expect(await find('secret', { tenantId: 'tenant-b' })).toEqual(['secret plans of theirs']);
    // Found as soon as it is stored, the index already built.
    await store(mine.id, ['more secret notes']);
    expect(await find('secret')).toHaveLength(2);
  });

  it('should rank the better match first, then the newer, and page stably after the last hit', async () => {
    const chat = await subject.repository.createChat(newChat());
    const [older, newer] = await store(chat.id, ['invoice sent', 'invoice sent']);
    await store(chat.id, [
      'invoice invoice invoice, the invoice again',
      ...Array.from({ length: 9 }, (_, i) => `invoice ${i} for the pile`),
    ]);
    const [best, second, third] = await subject.search.search({ tenantId: TENANT, terms: ['invoice'], limit: 3 });
    expect(best.message.content).toBe('invoice invoice invoice, the invoice again');
    expect(best.rank).toBeGreaterThanOrEqual(second.rank);
    expect(second.rank).toBeGreaterThanOrEqual(third.rank);

    const all = await subject.search.search({ tenantId: TENANT, terms: ['invoice'], limit: 100 });
    expect(all.findIndex((h) => h.message.id === newer.id)).toBeLessThan(
      all.findIndex((h) => h.message.id === older.id),
    );
    const walked = (
      await readAllPages(
        'search',
        { size: 4, maxPages: 10 },
        (after?: { rank: number; messageId: string }) =>
          subject.search.search({ tenantId: TENANT, terms: ['invoice'], limit: 4, after }),
        (hit) => ({ rank: hit.rank, messageId: hit.message.id }),
      )
    ).map((h) => h.message.id);
    expect(walked).toEqual(all.map((h) => h.message.id));
    expect(new Set(walked).size).toBe(12);
  });
});
