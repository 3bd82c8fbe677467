import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { openTestRepository, TestDatabase, testDatabases } from '../support/test-databases';
import { describeChatRepositoryContract, RepositoryUnderTest } from './chat-repository.contract';

/** A repository over a database of its own, dropped when the test is done. */
const onOwnDatabase = (create: () => Promise<TestDatabase>) => async (): Promise<RepositoryUnderTest> => {
  const database = await create();
  const { repository, close } = await openTestRepository(database);
  return {
    repository,
    close: async () => {
      await close();
      await database.drop();
    },
  };
};

describeChatRepositoryContract('InMemoryChatRepository', async () => ({
  repository: new InMemoryChatRepository(),
  close: async () => undefined,
}));

for (const [name, create] of testDatabases()) {
  describeChatRepositoryContract(`SqlChatRepository on ${name}`, onOwnDatabase(create));
}
