import { ApiProperty } from '@nestjs/swagger';
import { Chat } from '../chat';

export class ChatDto {
  @ApiProperty({ format: 'uuid', example: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e' })
  id: string;

  @ApiProperty({ type: String, nullable: true, example: 'Trip to Lisbon' })
  title: string | null;

  @ApiProperty({ type: String, nullable: true, example: 'You are a friendly travel planner. Keep answers short.' })
  systemPrompt: string | null;

  @ApiProperty({ example: 'gpt-4.1-mini' })
  model: string;

  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, example: { customerId: 'c_42' } })
  metadata: Record<string, string>;

  @ApiProperty({ type: 'integer', minimum: 0, example: 4 })
  messageCount: number;

  @ApiProperty({ format: 'date-time', example: '2026-11-25T09:30:00.000Z' })
  createdAt: string;

  @ApiProperty({ format: 'date-time', example: '2026-11-25T09:31:12.000Z' })
  updatedAt: string;

  @ApiProperty({ type: String, format: 'date-time', nullable: true, example: '2026-11-25T09:31:12.000Z' })
  lastMessageAt: string | null;

  @ApiProperty({
    type: String,
    format: 'uuid',
    nullable: true,
    description:
      'The last message of the branch the chat shows (its newest message unless a client switched); null while empty',
    example: '0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d',
  })
  currentMessageId: string | null;

  static from(chat: Chat): ChatDto {
    return {
      id: chat.id,
      title: chat.title,
      systemPrompt: chat.systemPrompt,
      model: chat.model,
      metadata: chat.metadata,
      messageCount: chat.messageCount,
      createdAt: chat.createdAt.toISOString(),
      updatedAt: chat.updatedAt.toISOString(),
      lastMessageAt: chat.lastMessageAt?.toISOString() ?? null,
      currentMessageId: chat.currentMessageId,
    };
  }
}

export class ChatPageDto {
  @ApiProperty({ type: [ChatDto] })
  data: ChatDto[];

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor` for the next page; null on the last page',
    example: 'eyJzIjoiY2hhdHMiLCJwIjoiMDE5OGYyYzQifQ',
  })
  nextCursor: string | null;
}
