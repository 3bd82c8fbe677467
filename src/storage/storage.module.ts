import { Logger, Module } from '@nestjs/common';
import { ChatRepository } from '../chats/chat.repository';
import { storageConfig, StorageConfig } from '../config/storage.config';
import { IdempotencyStore } from '../idempotency/idempotency.store';
import { ChatDigestStore } from '../summaries/chat-digest.store';
import { InMemoryChatDigestStore } from './in-memory/in-memory-chat-digest.store';
import { InMemoryChatRepository } from './in-memory/in-memory-chat.repository';
import { InMemoryIdempotencyStore } from './in-memory/in-memory-idempotency.store';
import { openSqlDatabase } from './open-sql-database';
import { SqlChatDigestStore } from './sql/sql-chat-digest.store';
import { SqlChatRepository } from './sql/sql-chat.repository';
import type { SqlDatabase } from './sql/sql-database';
import { SqlIdempotencyStore } from './sql/sql-idempotency.store';

/** The open database DATABASE_URL names, or null for in-memory storage. */
const SQL_DATABASE = Symbol('SQL_DATABASE');

/**
 * Binds the storage ports, {@link ChatRepository}, {@link IdempotencyStore} and
 * {@link ChatDigestStore}, from DATABASE_URL:
 * in memory when unset, else SQLite or PostgreSQL, migrated to the latest schema before the
 * service starts. Nothing outside this module knows which one is bound.
 */
@Module({
  providers: [
    {
      provide: SQL_DATABASE,
      inject: [storageConfig.KEY],
      useFactory: async ({ database: storage }: StorageConfig): Promise<SqlDatabase | null> => {
        if (storage.kind === 'memory') return null;
        const { database, applied } = await openSqlDatabase(storage);
        if (applied.length > 0) new Logger('Storage').log(`Applied migrations: ${applied.join(', ')}`);
        return database;
      },
    },
    {
      provide: ChatRepository,
      inject: [storageConfig.KEY, SQL_DATABASE],
      useFactory: ({ chatLockLeaseMs }: StorageConfig, database: SqlDatabase | null): ChatRepository =>
        database ? new SqlChatRepository(database, chatLockLeaseMs) : new InMemoryChatRepository(),
    },
    {
      provide: IdempotencyStore,
      inject: [SQL_DATABASE],
      useFactory: (database: SqlDatabase | null): IdempotencyStore =>
        database ? new SqlIdempotencyStore(database) : new InMemoryIdempotencyStore(),
    },
    {
      provide: ChatDigestStore,
      inject: [SQL_DATABASE, ChatRepository],
      useFactory: (database: SqlDatabase | null, chats: ChatRepository): ChatDigestStore => {
        if (database) return new SqlChatDigestStore(database);
        // In memory, digests live on the chats' records.
        if (chats instanceof InMemoryChatRepository) return new InMemoryChatDigestStore(chats);
        throw new Error('A ChatRepository of your own needs a ChatDigestStore of your own: override both.');
      },
    },
  ],
  exports: [ChatRepository, IdempotencyStore, ChatDigestStore],
})
export class StorageModule {}
