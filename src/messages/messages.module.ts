import { Module } from '@nestjs/common';
import { ChatsModule } from '../chats/chats.module';
import { IdempotencyModule } from '../idempotency/idempotency.module';
import { LlmModule } from '../llm/llm.module';
import { SummariesModule } from '../summaries/summaries.module';
import { ContextBuilder } from './context-builder';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';
import { TurnAdmission } from './turn-admission';

@Module({
  imports: [ChatsModule, LlmModule, SummariesModule, IdempotencyModule],
  controllers: [MessagesController],
  providers: [MessagesService, ContextBuilder, TurnAdmission],
  exports: [TurnAdmission],
})
export class MessagesModule {}
