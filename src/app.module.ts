import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { ChatsModule } from './chats/chats.module';
import { appConfig } from './config/app-config';
import { LlmModule } from './llm/llm.module';
import { MessagesModule } from './messages/messages.module';
import { SummariesModule } from './summaries/summaries.module';

@Module({
  imports: [
    ConfigModule.forRoot({ isGlobal: true, cache: true, load: [appConfig] }),
    ChatsModule,
    MessagesModule,
    SummariesModule,
    LlmModule,
  ],
})
export class AppModule {}
