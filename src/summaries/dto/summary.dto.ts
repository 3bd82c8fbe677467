import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsOptional } from 'class-validator';
import { ChatSummary } from '../summary';
import { MAX_HIGHLIGHTS, MAX_TOPICS } from '../chat-digest';

export class SummaryQuery {
  @ApiPropertyOptional({
    type: Boolean,
    description: 'Add `abstract`, a short summary written by the LLM (cached until the chat changes)',
    example: false,
  })
  @IsOptional()
  @Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean()
  abstract?: boolean;
}

export class HighlightDto {
  @ApiProperty({ format: 'uuid', example: '0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d' })
  messageId: string;

  @ApiProperty({ enum: ['user', 'assistant'], example: 'assistant' })
  role: 'user' | 'assistant';

  @ApiProperty({ example: 'In Belém, the pastry shop near the monastery bakes the famous custard tarts.' })
  text: string;
}

export class TopicDto {
  @ApiProperty({ example: 'custard tarts' })
  term: string;

  @ApiProperty({ minimum: 0, maximum: 1, description: 'Relative weight; the best topic scores 1', example: 0.75 })
  score: number;
}

export class SentimentDto {
  @ApiProperty({ minimum: -1, maximum: 1, example: 0.44 })
  score: number;

  @ApiProperty({ enum: ['positive', 'neutral', 'negative'], example: 'positive' })
  label: 'positive' | 'neutral' | 'negative';
}

export class SentimentByRoleDto {
  @ApiProperty({ type: SentimentDto })
  user: SentimentDto;

  @ApiProperty({ type: SentimentDto })
  assistant: SentimentDto;
}

export class ChatSentimentDto extends SentimentDto {
  @ApiProperty({ type: SentimentByRoleDto })
  byRole: SentimentByRoleDto;
}

export class SummaryDto {
  @ApiProperty({ format: 'uuid', example: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e' })
  chatId: string;

  @ApiProperty({ type: String, nullable: true, example: 'Trip to Lisbon' })
  title: string | null;

  @ApiProperty({ type: 'integer', minimum: 0, example: 10 })
  messageCount: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 5 })
  userMessageCount: number;

  @ApiProperty({ type: 'integer', minimum: 0, example: 5 })
  assistantMessageCount: number;

  @ApiProperty({
    type: 'integer',
    minimum: 0,
    description: 'Tokens of all message contents (o200k_base)',
    example: 412,
  })
  tokenCount: number;

  @ApiProperty({ type: String, format: 'date-time', nullable: true, example: '2026-11-25T09:31:10.000Z' })
  firstMessageAt: string | null;

  @ApiProperty({ type: String, format: 'date-time', nullable: true, example: '2026-11-25T09:40:02.000Z' })
  lastMessageAt: string | null;

  @ApiProperty({
    type: [HighlightDto],
    maxItems: MAX_HIGHLIGHTS,
    description: `Up to ${MAX_HIGHLIGHTS} sentences that best represent the chat, in chat order`,
  })
  highlights: HighlightDto[];

  @ApiProperty({
    type: [TopicDto],
    maxItems: MAX_TOPICS,
    description: `Up to ${MAX_TOPICS} key terms or phrases, best first`,
  })
  topics: TopicDto[];

  @ApiProperty({ type: ChatSentimentDto })
  sentiment: ChatSentimentDto;

  @ApiPropertyOptional({
    description: 'With `?abstract=true`: a short summary written by the LLM',
    example:
      'A couple plans a May weekend in Lisbon; the assistant suggests Alfama, tram 28, custard tarts in Belém and a day on the coast.',
  })
  abstract?: string;

  static from(summary: ChatSummary): SummaryDto {
    return {
      ...summary,
      firstMessageAt: summary.firstMessageAt?.toISOString() ?? null,
      lastMessageAt: summary.lastMessageAt?.toISOString() ?? null,
    };
  }
}
