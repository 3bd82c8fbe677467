import { Module } from '@nestjs/common';
import { ChatsModule } from '../chats/chats.module';
import { IdempotencyModule } from '../idempotency/idempotency.module';
import { LlmModule } from '../llm/llm.module';
import { SummariesModule } from '../summaries/summaries.module';
import { ContextBuilder } from './context-builder';
import { LiveTurns } from './live-turns';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';
import { RunningTurnsController } from './running-turns.controller';
import { RunningTurnsService } from './running-turns.service';
import { TurnAdmission } from './turn-admission';

@Module({
  imports: [ChatsModule, LlmModule, SummariesModule, IdempotencyModule],
  controllers: [MessagesController, RunningTurnsController],
  providers: [MessagesService, ContextBuilder, TurnAdmission, LiveTurns, RunningTurnsService],
  exports: [TurnAdmission],
})
export class MessagesModule {}
