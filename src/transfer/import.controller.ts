import { Body, Controller, Post, Query, Res } from '@nestjs/common';
import { ApiBody, ApiExtraModels, ApiOperation, ApiTags, getSchemaPath } from '@nestjs/swagger';
import type { Response } from 'express';
import { TenantId } from '../auth/tenant-id.decorator';
import { answerCreatedChat, ApiCreatedChatResponse } from '../chats/created-chat-response';
import { ChatDto } from '../chats/dto/chat.dto';
import {
  ApiJsonBodyProblemResponses,
  ApiProblemResponse,
  ApiValidationProblemResponse,
} from '../common/problem-details/api-problem-response.decorator';
import { NoFieldsPipe } from '../common/validation/no-fields.pipe';
import { ApiIdempotencyKey, IdempotencyKeyHeader } from '../idempotency/idempotency-key.decorator';
import { ChatImporter } from './chat-importer';
import { EXPORT_DOCUMENT_EXAMPLE, ExportDocumentDto } from './dto/export-document.dto';
import { MESSAGE_LIST_IMPORT_EXAMPLE, MessageListImportDto } from './dto/message-list-import.dto';
import { IMPORT_PATH } from './import-path';

@ApiTags('export and import')
@ApiExtraModels(ExportDocumentDto, MessageListImportDto)
@Controller(IMPORT_PATH)
export class ImportController {
  constructor(private readonly importer: ChatImporter) {}

  @Post()
  @ApiOperation({
    summary: 'Import a chat: an export document, or a plain list of messages',
    description:
      'Stores a new chat with new ids and the same order, branches, contents, statuses and message times as the ' +
      "document, and its `createdAt`; the current branch is the document's (the last message of a plain list). " +
      'A plain list is in the OpenAI Chat shape: a leading `system` message becomes the `systemPrompt`, the others ' +
      'form one branch. User messages follow the limits of sending; an assistant message may also be empty or ' +
      'blank, as the service stores a reply stopped before its first token or left empty by the model. All or ' +
      'nothing: a bad document is a 422 naming its first bad field, and nothing is stored. At most 10,000 ' +
      'messages, in a body of up to IMPORT_BODY_LIMIT (16 MB by default).',
  })
  @ApiBody({
    schema: { oneOf: [{ $ref: getSchemaPath(ExportDocumentDto) }, { $ref: getSchemaPath(MessageListImportDto) }] },
    examples: {
      exportDocument: { summary: 'An export document', value: EXPORT_DOCUMENT_EXAMPLE },
      messageList: { summary: 'A plain list of messages (OpenAI Chat shape)', value: MESSAGE_LIST_IMPORT_EXAMPLE },
    },
  })
  @ApiIdempotencyKey('the same chat')
  @ApiCreatedChatResponse()
  @ApiValidationProblemResponse('messages[12].role: role must be one of the following values: user, assistant')
  // Above the general 413, whose description it extends: this route has a limit of its own.
  @ApiProblemResponse(413, {
    description: 'Here the limit is IMPORT_BODY_LIMIT (16 MB by default), not BODY_LIMIT',
    detail: 'The request body is larger than the service accepts.',
  })
  @ApiJsonBodyProblemResponses()
  async import(
    @TenantId() tenantId: string,
    @Body() body: Record<string, unknown>,
    @Query(NoFieldsPipe) _query: void,
    @IdempotencyKeyHeader() idempotencyKey: string | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<ChatDto> {
    return answerCreatedChat(response, await this.importer.import(tenantId, body, idempotencyKey));
  }
}
