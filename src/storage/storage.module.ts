import { Module } from '@nestjs/common';
import { ChatRepository } from '../chats/chat.repository';
import { InMemoryChatRepository } from './in-memory/in-memory-chat.repository';

/**
 * Binds the {@link ChatRepository} token. Database implementations will be chosen here from
 * DATABASE_URL; today the only storage is in memory.
 */
@Module({
  providers: [{ provide: ChatRepository, useClass: InMemoryChatRepository }],
  exports: [ChatRepository],
})
export class StorageModule {}
