import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { AuthModule } from './auth/auth.module';
import { ChatsModule } from './chats/chats.module';
import { CONFIG_SLICES } from './config/config-slices';
import { HealthModule } from './health/health.module';
import { LlmModule } from './llm/llm.module';
import { LoggingModule } from './logging/logging.module';
import { MessagesModule } from './messages/messages.module';
import { MetricsModule } from './metrics/metrics.module';
import { PlaygroundModule } from './playground/playground.module';
import { RateLimitModule } from './rate-limit/rate-limit.module';
import { SearchModule } from './search/search.module';
import { StorageModule } from './storage/storage.module';
import { SummariesModule } from './summaries/summaries.module';
import { TransferModule } from './transfer/transfer.module';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, cache: true, load: CONFIG_SLICES }),
    StorageModule,
    LoggingModule,
    MetricsModule,
    AuthModule,
    RateLimitModule,
    HealthModule,
    ChatsModule,
    MessagesModule,
    SummariesModule,
    SearchModule,
    TransferModule,
    LlmModule,
    PlaygroundModule,
  ],
})
export class AppModule {}
