import { ApiProperty } from '@nestjs/swagger';
import { Message } from '../../chats/message';
import type { Turn } from '../turn';

export class TokenUsageDto {
  @ApiProperty({ type: 'integer', minimum: 0, example: 412 })
  promptTokens: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 57 })
  completionTokens: number;
}

export class MessageDto {
  @ApiProperty({ format: 'uuid', example: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b' })
  id: string;

  @ApiProperty({ format: 'uuid', example: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e' })
  chatId: string;

  @ApiProperty({
    type: 'integer',
    minimum: 1,
    description: '1, 2, 3 … in the order the chat received them, across every branch; no gaps',
    example: 1,
  })
  seq: number;

  @ApiProperty({ enum: ['user', 'assistant'], example: 'user' })
  role: 'user' | 'assistant';

  @ApiProperty({ example: 'What should I see in Lisbon in one day?' })
  content: string;

  @ApiProperty({
    enum: ['completed', 'incomplete'],
    description: '`incomplete`: an assistant reply cut short',
    example: 'completed',
  })
  status: 'completed' | 'incomplete';

  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'Assistant messages: the user message answered',
    example: null,
  })
  inReplyTo: string | null;

  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description: 'The message it follows in its branch; null for the first message of a branch',
    example: null,
  })
  parentId: string | null;

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Assistant messages: the model that wrote it',
    example: null,
  })
  model: string | null;

  @ApiProperty({
    type: TokenUsageDto,
    nullable: true,
    description: 'Assistant messages: tokens the upstream reported',
    example: null,
  })
  usage: TokenUsageDto | null;

  @ApiProperty({ format: 'date-time', example: '2026-11-25T09:31:10.000Z' })
  createdAt: string;

  static from(message: Message): MessageDto {
    return {
      id: message.id,
      chatId: message.chatId,
      seq: message.seq,
      role: message.role,
      content: message.content,
      status: message.status,
      inReplyTo: message.inReplyTo,
      parentId: message.parentId,
      model: message.model,
      usage: message.usage,
      createdAt: message.createdAt,
    };
  }
}

/** The examples of one turn's messages, used wherever OpenAPI shows a message. */
export const USER_MESSAGE_EXAMPLE = {
  id: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b',
  chatId: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
  seq: 1,
  role: 'user',
  content: 'What should I see in Lisbon in one day?',
  status: 'completed',
  inReplyTo: null,
  parentId: null,
  model: null,
  usage: null,
  createdAt: '2026-11-25T09:31:10.000Z',
};

export const ASSISTANT_MESSAGE_EXAMPLE = {
  id: '0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d',
  chatId: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
  seq: 2,
  role: 'assistant',
  content: 'Start at Belém for the tower and pastéis, then ride tram 28 up to Alfama …',
  status: 'completed',
  inReplyTo: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b',
  parentId: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b',
  model: 'gpt-4.1-mini',
  usage: { promptTokens: 412, completionTokens: 57 },
  createdAt: '2026-11-25T09:31:12.000Z',
};

export class TurnDto {
  @ApiProperty({ type: MessageDto, description: 'The stored user message' })
  userMessage: MessageDto;

  @ApiProperty({ type: MessageDto, description: 'The stored reply', example: ASSISTANT_MESSAGE_EXAMPLE })
  assistantMessage: MessageDto;

  static from({ userMessage, assistantMessage }: Turn): TurnDto {
    return { userMessage: MessageDto.from(userMessage), assistantMessage: MessageDto.from(assistantMessage) };
  }
}

export class MessagePageDto {
  @ApiProperty({ type: [MessageDto] })
  data: MessageDto[];

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor` for the next page; null on the last page',
    example: null,
  })
  nextCursor: string | null;
}
