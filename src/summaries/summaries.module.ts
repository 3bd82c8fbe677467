import { Module } from '@nestjs/common';
import { ChatsModule } from '../chats/chats.module';
import { LlmModule } from '../llm/llm.module';
import { ChatAbstracts } from './chat-abstracts';
import { ChatDigests } from './chat-digests';
import { ChatTitler } from './chat-titles';
import { SummariesController } from './summaries.controller';
import { SummariesService } from './summaries.service';
import { TextAnalyzer } from './text-analyzer';

/** Chat summaries, their digests and automatic chat titles: what text analysis says about a chat. */
@Module({
  imports: [ChatsModule, LlmModule],
  controllers: [SummariesController],
  providers: [SummariesService, TextAnalyzer, ChatAbstracts, ChatDigests, ChatTitler],
  exports: [ChatTitler, ChatDigests],
})
export class SummariesModule {}
