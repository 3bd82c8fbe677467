import { ApiProperty } from '@nestjs/swagger';
import { ChatDto } from '../../chats/dto/chat.dto';
import { ApiClosedSchema } from '../../common/validation/api-closed-schema.decorator';
import {
  ASSISTANT_MESSAGE_EXAMPLE,
  MessageDto,
  TokenUsageDto,
  USER_MESSAGE_EXAMPLE,
} from '../../messages/dto/message.dto';
import { EXPORT_FORMAT } from '../export-document';

export const EXPORT_DOCUMENT_EXAMPLE = {
  format: EXPORT_FORMAT,
  chat: {
    id: USER_MESSAGE_EXAMPLE.chatId,
    title: 'Trip to Lisbon',
    systemPrompt: 'You are a friendly travel planner. Keep answers short.',
    model: 'gpt-4.1-mini',
    metadata: { customerId: 'c_42' },
    messageCount: 2,
    createdAt: '2026-11-25T09:30:00.000Z',
    updatedAt: '2026-11-25T09:31:12.000Z',
    lastMessageAt: '2026-11-25T09:31:12.000Z',
    currentMessageId: ASSISTANT_MESSAGE_EXAMPLE.id,
  },
  messages: [USER_MESSAGE_EXAMPLE, ASSISTANT_MESSAGE_EXAMPLE],
};

/*
 * The objects of an export document are closed, as an import refuses any field they do not name
 * (422): schemas of their own, so that the chats and messages the API answers stay open to new fields.
 */
@ApiClosedSchema('The chat of an export document: the fields of a ChatDto, and no other')
export class ExportedChatDto extends ChatDto {}

@ApiClosedSchema('The usage of an exported message: the fields of a TokenUsageDto, and no other')
export class ExportedTokenUsageDto extends TokenUsageDto {}

@ApiClosedSchema('A message of an export document: the fields of a MessageDto, and no other')
export class ExportedMessageDto extends MessageDto {
  // The rest of the property as MessageDto describes it. (The class is a schema only, never built.)
  @ApiProperty({ type: ExportedTokenUsageDto })
  override usage: ExportedTokenUsageDto | null = null;
}

/** A chat with every message of every branch: what an export gives and an import takes. */
@ApiClosedSchema()
export class ExportDocumentDto {
  @ApiProperty({ enum: [EXPORT_FORMAT], example: EXPORT_FORMAT })
  format: typeof EXPORT_FORMAT;

  @ApiProperty({
    type: ExportedChatDto,
    description:
      'An import keeps `title`, `systemPrompt`, `model`, `metadata`, `createdAt` and the current branch ' +
      '(`currentMessageId`, which must name a message of the document); it gives the rest anew',
  })
  chat: ExportedChatDto;

  @ApiProperty({
    type: [ExportedMessageDto],
    description:
      'Every message of every branch, by seq (an import takes at most 10,000). It keeps their order, `role`, `content`, `status`, ' +
      '`model`, `usage` and `createdAt`; `parentId` must be null or name an earlier message of the document, ' +
      '`inReplyTo` null or an earlier user message, and both become the new ids; `id`, `chatId` and `seq` are ' +
      'given anew',
  })
  messages: ExportedMessageDto[];
}
