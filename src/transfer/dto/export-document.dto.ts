import { ApiProperty } from '@nestjs/swagger';
import { ChatDto } from '../../chats/dto/chat.dto';
import { MessageDto } from '../../messages/dto/message.dto';
import { EXPORT_FORMAT } from '../export-document';

const CHAT_ID = '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e';
const QUESTION_ID = '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b';
const ANSWER_ID = '0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d';

export const EXPORT_DOCUMENT_EXAMPLE = {
  format: EXPORT_FORMAT,
  chat: {
    id: CHAT_ID,
    title: 'Trip to Lisbon',
    systemPrompt: 'You are a friendly travel planner. Keep answers short.',
    model: 'gpt-4.1-mini',
    metadata: { customerId: 'c_42' },
    messageCount: 2,
    createdAt: '2026-11-25T09:30:00.000Z',
    updatedAt: '2026-11-25T09:31:12.000Z',
    lastMessageAt: '2026-11-25T09:31:12.000Z',
    currentMessageId: ANSWER_ID,
  },
  messages: [
    {
      id: QUESTION_ID,
      chatId: CHAT_ID,
      seq: 1,
      role: 'user',
      content: 'What should I see in Lisbon in one day?',
      status: 'completed',
      inReplyTo: null,
      parentId: null,
      model: null,
      usage: null,
      createdAt: '2026-11-25T09:31:10.000Z',
    },
    {
      id: ANSWER_ID,
      chatId: CHAT_ID,
      seq: 2,
      role: 'assistant',
      content: 'Start at Belém for the tower and pastéis, then ride tram 28 up to Alfama …',
      status: 'completed',
      inReplyTo: QUESTION_ID,
      parentId: QUESTION_ID,
      model: 'gpt-4.1-mini',
      usage: { promptTokens: 412, completionTokens: 57 },
      createdAt: '2026-11-25T09:31:12.000Z',
    },
  ],
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
      '`model`, `usage` and `createdAt`; `parentId` and `inReplyTo` must be null or name an earlier message of the ' +
      'document, and become the new ids; `id`, `chatId` and `seq` are given anew',
  })
  messages: MessageDto[];
}
