import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsBoolean, IsOptional } from 'class-validator';

export class SendMessageQuery {
  @ApiPropertyOptional({
    type: Boolean,
    description: 'true: answer as `text/event-stream` (like `Accept: text/event-stream`); false: plain JSON',
    example: false,
  })
  @IsOptional()
  @Transform(({ value }) => (value === 'true' ? true : value === 'false' ? false : value))
  @IsBoolean()
  stream?: boolean;
}
