import { ApiProperty } from '@nestjs/swagger';
import { ChatDto } from '../../chats/dto/chat.dto';
import { ASSISTANT_MESSAGE_EXAMPLE, MessageDto, USER_MESSAGE_EXAMPLE } from '../../messages/dto/message.dto';
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

/** A chat with every message of every branch: what an export gives and an import takes. */
export class ExportDocumentDto {
  @ApiProperty({ enum: [EXPORT_FORMAT], example: EXPORT_FORMAT })
  format: typeof EXPORT_FORMAT;

  @ApiProperty({
    type: ChatDto,
    description:
      'An import keeps `title`, `systemPrompt`, `model`, `metadata`, `createdAt` and the current branch ' +
      '(`currentMessageId`, which must name a message of the document); it gives the rest anew',
  })
  chat: ChatDto;

  @ApiProperty({
    type: [MessageDto],
    description:
      'Every message of every branch, by seq (an import takes at most 10,000). It keeps their order, `role`, `content`, `status`, ' +
      '`model`, `usage` and `createdAt`; `parentId` must be null or name an earlier message of the document, ' +
      '`inReplyTo` null or an earlier user message, and both become the new ids; `id`, `chatId` and `seq` are ' +
      'given anew',
  })
  messages: MessageDto[];
}
