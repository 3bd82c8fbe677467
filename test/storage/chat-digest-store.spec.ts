import { ChatRepository } from '../../src/chats/chat.repository';
import { InMemoryChatDigestStore } from '../../src/storage/in-memory/in-memory-chat-digest.store';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { SqlChatDigestStore } from '../../src/storage/sql/sql-chat-digest.store';
import { ChatDigestStore } from '../../src/summaries/chat-digest.store';
import { openTestRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { key, newChat } from './fixtures';

interface StoreUnderTest {
  repository: ChatRepository;
  store: ChatDigestStore;
  close(): Promise<void>;
}

/** What every ChatDigestStore does, whatever stores it. */
function describeChatDigestStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(name, () => {
    let subject: StoreUnderTest;
    let repository: ChatRepository;
    let store: ChatDigestStore;
    beforeEach(async () => {
      subject = await open();
      ({ repository, store } = subject);
    });
    afterEach(() => subject.close());

    it('should keep a chat digest until a further one replaces it, never moving it backwards', async () => {
      const chat = await repository.createChat(newChat());
      expect(await store.load(key(chat.id))).toBeNull();

      await store.save(key(chat.id), { lastSeq: 10, snapshot: '{"at":10}' });
      expect(await store.load(key(chat.id))).toEqual({ lastSeq: 10, snapshot: '{"at":10}' });
      await store.save(key(chat.id), { lastSeq: 4, snapshot: '{"at":4}' });
      expect(await store.load(key(chat.id))).toEqual({ lastSeq: 10, snapshot: '{"at":10}' });
      // As far along: a rebuilt digest replaces the one it was rebuilt from.
      await store.save(key(chat.id), { lastSeq: 10, snapshot: '{"rebuilt":10}' });
      expect(await store.load(key(chat.id))).toEqual({ lastSeq: 10, snapshot: '{"rebuilt":10}' });
      await store.save(key(chat.id), { lastSeq: 12, snapshot: '{"at":12}' });
      expect(await store.load(key(chat.id))).toEqual({ lastSeq: 12, snapshot: '{"at":12}' });
    });

    it("should keep each chat's digest apart, and another tenant's chat's as if it did not exist", async () => {
      const [first, second] = [await repository.createChat(newChat()), await repository.createChat(newChat())];
      await store.save(key(first.id), { lastSeq: 2, snapshot: 'first' });
      await store.save(key(second.id, 'tenant-b'), { lastSeq: 2, snapshot: 'by another tenant' });

      expect(await store.load(key(first.id))).toEqual({ lastSeq: 2, snapshot: 'first' });
      expect(await store.load(key(first.id, 'tenant-b'))).toBeNull();
      expect(await store.load(key(second.id))).toBeNull();
    });

    it('should let a digest go with its chat, and store nothing for a chat that is gone', async () => {
      const chat = await repository.createChat(newChat());
      await store.save(key(chat.id), { lastSeq: 2, snapshot: 'digest' });
      await repository.deleteChat(key(chat.id));

      expect(await store.load(key(chat.id))).toBeNull();
      await store.save(key(chat.id), { lastSeq: 4, snapshot: 'too late' });
      expect(await store.load(key(chat.id))).toBeNull();
    });

    it('should hold a large digest whole', async () => {
      const chat = await repository.createChat(newChat());
      const snapshot = JSON.stringify({ terms: Array.from({ length: 50_000 }, (_, i) => [`term-${i}`, i]) });
      await store.save(key(chat.id), { lastSeq: 5_000, snapshot });
      expect(await store.load(key(chat.id))).toEqual({ lastSeq: 5_000, snapshot });
    });
  });
}

describeChatDigestStoreContract('InMemoryChatDigestStore', async () => {
  const repository = new InMemoryChatRepository();
  return { repository, store: new InMemoryChatDigestStore(repository), close: async () => undefined };
});

for (const [name, create] of testDatabases()) {
  describeChatDigestStoreContract(`SqlChatDigestStore on ${name}`, async () => {
    const database: TestDatabase = await create();
    const opened = await openTestRepository(database);
    return {
      repository: opened.repository,
      store: new SqlChatDigestStore(opened.database),
      close: async () => {
        await opened.close();
        await database.drop();
      },
    };
  });
}
