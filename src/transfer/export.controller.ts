import { Controller, Get, Query, Res } from '@nestjs/common';
import { ApiExtraModels, ApiOperation, ApiResponse, ApiTags, getSchemaPath } from '@nestjs/swagger';
import type { Response } from 'express';
import { TenantId } from '../auth/tenant-id.decorator';
import { ApiChatIdParam } from '../chats/chat-api.decorators';
import { ChatKey } from '../chats/chat';
import { ChatKeyParam } from '../chats/chat-key.decorator';
import { streamText } from '../common/http/text-stream';
import { ApiValidationProblemResponse } from '../common/problem-details/api-problem-response.decorator';
import { ApiUnknownFieldResponse, NoFieldsPipe } from '../common/validation/no-fields.pipe';
import { MessageDto } from '../messages/dto/message.dto';
import { ChatExporter } from './chat-exporter';
import { markdownSection, markdownTitle } from './chat-markdown';
import { ExportChatQuery } from './dto/export-chat.query';
import { EXPORT_DOCUMENT_EXAMPLE, ExportDocumentDto } from './dto/export-document.dto';

const JSON_TEXT = 'application/json; charset=utf-8';
const MARKDOWN = 'text/markdown; charset=utf-8';
const NDJSON = 'application/x-ndjson; charset=utf-8';

const MARKDOWN_EXAMPLE =
  markdownTitle(EXPORT_DOCUMENT_EXAMPLE.chat.title) +
  EXPORT_DOCUMENT_EXAMPLE.messages.map((message) => markdownSection(message as MessageDto)).join('');

@ApiTags('export and import')
@ApiExtraModels(ExportDocumentDto)
@Controller()
export class ExportController {
  constructor(private readonly exporter: ChatExporter) {}

  @Get('chats/:chatId/export')
  @ApiOperation({
    summary: 'Export a chat: every message of every branch, or its current branch as Markdown',
    description:
      'The export document (`konko.chat.v1`) holds the chat and every message of every branch by seq; ' +
      '`POST /chats/import` takes it back, here or on another instance. `?format=markdown` gives the title, then ' +
      'the current branch, a section a message, its content in a block quote (every line starts with `>`). ' +
      'Either is written as it is read.',
  })
  @ApiChatIdParam()
  @ApiResponse({
    status: 200,
    description: 'The export document, or with `?format=markdown` the current branch as Markdown',
    content: {
      'application/json': { schema: { $ref: getSchemaPath(ExportDocumentDto) }, example: EXPORT_DOCUMENT_EXAMPLE },
      'text/markdown': { schema: { type: 'string' }, example: MARKDOWN_EXAMPLE },
    },
  })
  @ApiValidationProblemResponse('format: format must be one of the following values: json, markdown')
  async exportChat(
    @ChatKeyParam() chat: ChatKey,
    @Query() query: ExportChatQuery,
    @Res() response: Response,
  ): Promise<void> {
    const format = query.format ?? 'json';
    const text = await this.exporter.exportChat(chat, format);
    await streamText(response, format === 'markdown' ? MARKDOWN : JSON_TEXT, text);
  }

  @Get('export')
  @ApiOperation({
    summary: "Export every chat of the caller's, newest first: one export document a line",
    description:
      'Newline-delimited JSON: each line is the export document of one chat, as `GET /chats/{chatId}/export` gives ' +
      'it. Chats and messages are read a page at a time and written as they are read, at the pace the client reads.',
  })
  @ApiResponse({
    status: 200,
    description: 'One export document a line (`application/x-ndjson`)',
    content: {
      'application/x-ndjson': {
        schema: { type: 'string', description: 'Lines of JSON, each an ExportDocumentDto' },
        example: `${JSON.stringify(EXPORT_DOCUMENT_EXAMPLE)}\n`,
      },
    },
  })
  @ApiUnknownFieldResponse('format')
  async exportAll(
    @TenantId() tenantId: string,
    @Query(NoFieldsPipe) _query: void,
    @Res() response: Response,
  ): Promise<void> {
    await streamText(response, NDJSON, this.exporter.exportAll(tenantId));
  }
}
