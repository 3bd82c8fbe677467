import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, MaxLength } from 'class-validator';

export class ResumeStreamQuery {
  @ApiPropertyOptional({
    description:
      'The `id` of the last event the client received, when it cannot send the `Last-Event-ID` header ' +
      '(this wins over the header)',
    example: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b.0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d.4',
  })
  @IsOptional()
  @MaxLength(200)
  @IsString()
  lastEventId?: string;
}
