import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';

export class ResumeStreamQuery {
  // No example: Swagger UI would send it, and an id of no turn of the chat is refused (422).
  @ApiPropertyOptional({
    description:
      'The `id` of the last event the client received, as its `id:` line gave it (opaque), when it cannot send ' +
      'the `Last-Event-ID` header (this wins over the header)',
  })
  @IsOptional()
  @MaxLength(200)
  @IsString()
  lastEventId?: string;
}
