import { ApiProperty } from '@nestjs/swagger';
import { MessageDto } from '../../messages/dto/message.dto';

export class SnippetDto {
  @ApiProperty({
    description: 'An excerpt of the message around its first match; `…` where it was cut; no markup',
    example: '…the refund for order 1042 was delayed by the carrier, and we credited…',
  })
  text: string;

  @ApiProperty({
    type: 'array',
    items: { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 2 },
    description: '[start, end) of each matched word in `text`, in UTF-16 code units (as JavaScript strings count)',
    example: [
      [5, 11],
      [36, 43],
    ],
  })
  matches: [number, number][];
}

export class SearchHitDto {
  @ApiProperty({ format: 'uuid', example: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e' })
  chatId: string;

  @ApiProperty({ type: String, nullable: true, example: 'Order 1042' })
  chatTitle: string | null;

  @ApiProperty({ type: MessageDto })
  message: MessageDto;

  @ApiProperty({ type: SnippetDto })
  snippet: SnippetDto;
}

export class SearchPageDto {
  @ApiProperty({ type: [SearchHitDto], description: 'Best match first, then newest' })
  data: SearchHitDto[];

  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor` (with the same `q`) for the next page; null on the last page',
    example: null,
  })
  nextCursor: string | null;
}
