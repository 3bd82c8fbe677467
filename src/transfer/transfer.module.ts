import { Module } from '@nestjs/common';
import { ChatsModule } from '../chats/chats.module';
import { LlmModule } from '../llm/llm.module';
import { ChatExporter } from './chat-exporter';
import { ChatImporter } from './chat-importer';
import { ExportController } from './export.controller';
import { ImportController } from './import.controller';

/** Whole chats in and out: export documents, Markdown, an NDJSON export of every chat, imports. */
@Module({
  imports: [ChatsModule, LlmModule],
  controllers: [ExportController, ImportController],
  providers: [ChatExporter, ChatImporter],
})
export class TransferModule {}
