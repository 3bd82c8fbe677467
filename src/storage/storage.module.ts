import { Logger, Module } from '@nestjs/common';
import { ChatRepository } from '../chats/chat.repository';
import { AppConfig, appConfig } from '../config/app-config';
import { InMemoryChatRepository } from './in-memory/in-memory-chat.repository';
import { openSqlDatabase } from './open-sql-database';
import { SqlChatRepository } from './sql/sql-chat.repository';

/**
 * Binds the {@link ChatRepository} token from DATABASE_URL: in memory when unset, else SQLite or
 * PostgreSQL, migrated to the latest schema before the service starts. Nothing outside this
 * module knows which one is bound.
 */
@Module({
  providers: [
    {
      provide: ChatRepository,
      inject: [appConfig.KEY],
      useFactory: async ({ storage, chatLockLeaseMs }: AppConfig): Promise<ChatRepository> => {
        if (storage.kind === 'memory') return new InMemoryChatRepository();
        const { database, applied } = await openSqlDatabase(storage);
        if (applied.length > 0) new Logger('Storage').log(`Applied migrations: ${applied.join(', ')}`);
        return new SqlChatRepository(database, chatLockLeaseMs);
      },
    },
  ],
  exports: [ChatRepository],
})
export class StorageModule {}
