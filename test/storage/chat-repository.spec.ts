import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import {
  createPostgresTestDatabase,
  createSqliteTestDatabase,
  openTestRepository,
  TestDatabase,
} from '../support/test-databases';
import { postgresUnavailableReason } from '../support/test-postgres';
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

describeChatRepositoryContract('SqlChatRepository on SQLite', onOwnDatabase(createSqliteTestDatabase));

const postgresMissing = postgresUnavailableReason();
if (postgresMissing === null) {
  describeChatRepositoryContract('SqlChatRepository on PostgreSQL', onOwnDatabase(createPostgresTestDatabase));
} else {
  console.warn(`The PostgreSQL run of the ChatRepository contract does not run: ${postgresMissing}`);
}
