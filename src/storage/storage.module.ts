import { Global, Logger, Module } from '@nestjs/common';
import { ChatRepository } from '../chats/chat.repository';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { storageConfig, StorageConfig } from '../config/storage.config';
import { IdempotencyStore } from '../idempotency/idempotency.store';
import { LocalTurnRelay, TurnRelay } from '../messages/turn-relay';
import { MessageSearch } from '../search/message-search';
import { ChatDigestStore } from '../summaries/chat-digest.store';
import { InMemoryChatDigestStore } from './in-memory/in-memory-chat-digest.store';
import { InMemoryChatRepository } from './in-memory/in-memory-chat.repository';
import { InMemoryIdempotencyStore } from './in-memory/in-memory-idempotency.store';
import { InMemoryMessageSearch } from './in-memory/in-memory-message-search';
import { openSqlDatabase } from './open-sql-database';
import { SqlChatDigestStore } from './sql/sql-chat-digest.store';
import { SqlChatRepository } from './sql/sql-chat.repository';
import type { SqlDatabase } from './sql/sql-database';
import { SqlIdempotencyStore } from './sql/sql-idempotency.store';
import { SqlMessageSearch } from './sql/sql-message-search';
import { SqlTurnRelay } from './sql/sql-turn-relay';
import { RedisTurnRelay } from './redis/redis-turn-relay';

/** The open database DATABASE_URL names, or null for in-memory storage. */
const SQL_DATABASE = Symbol('SQL_DATABASE');
/** Without a database: the chats' records in memory, which their digests are kept on too. */
const IN_MEMORY_CHATS = Symbol('IN_MEMORY_CHATS');

/**
 * Binds the storage ports the features own, {@link ChatRepository}, {@link IdempotencyStore} and
 * {@link ChatDigestStore} and {@link MessageSearch}, from DATABASE_URL: in memory when unset, else SQLite or PostgreSQL,
 * migrated to the latest schema before the service starts; and {@link TurnRelay}, what instances
 * share of running turns: through Redis with REDIS_URL, else through the database, else nothing.
 * Global, and imported by the application's root module alone: no feature imports storage, and
 * none knows which is bound.
 */
@Global()
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
      provide: IN_MEMORY_CHATS,
      inject: [SQL_DATABASE],
      useFactory: (database: SqlDatabase | null) => (database ? null : new InMemoryChatRepository()),
    },
    {
      provide: ChatRepository,
      inject: [storageConfig.KEY, SQL_DATABASE, IN_MEMORY_CHATS],
      useFactory: (
        { chatLockLeaseMs }: StorageConfig,
        database: SqlDatabase | null,
        inMemory: InMemoryChatRepository | null,
      ): ChatRepository => (database ? new SqlChatRepository(database, chatLockLeaseMs) : inMemory!),
    },
    {
      provide: IdempotencyStore,
      inject: [SQL_DATABASE],
      useFactory: (database: SqlDatabase | null): IdempotencyStore =>
        database ? new SqlIdempotencyStore(database) : new InMemoryIdempotencyStore(),
    },
    {
      provide: ChatDigestStore,
      inject: [SQL_DATABASE, IN_MEMORY_CHATS],
      useFactory: (database: SqlDatabase | null, inMemory: InMemoryChatRepository | null): ChatDigestStore =>
        database ? new SqlChatDigestStore(database) : new InMemoryChatDigestStore(inMemory!),
    },
    {
      provide: MessageSearch,
      inject: [SQL_DATABASE, IN_MEMORY_CHATS],
      useFactory: (database: SqlDatabase | null, inMemory: InMemoryChatRepository | null): MessageSearch =>
        database ? new SqlMessageSearch(database) : new InMemoryMessageSearch(inMemory!),
    },
    {
      provide: TurnRelay,
      inject: [storageConfig.KEY, llmConfig.KEY, SQL_DATABASE],
      useFactory: async (
        { redisUrl, chatLockLeaseMs }: StorageConfig,
        { maxOutputTokens }: LlmConfig,
        database: SqlDatabase | null,
      ): Promise<TurnRelay> => {
        if (redisUrl) {
          const relay = new RedisTurnRelay(redisUrl, chatLockLeaseMs, maxOutputTokens);
          await relay.start();
          return relay;
        }
        return database ? new SqlTurnRelay(database) : new LocalTurnRelay();
      },
    },
  ],
  exports: [ChatRepository, IdempotencyStore, ChatDigestStore, TurnRelay, MessageSearch],
})
export class StorageModule {}
