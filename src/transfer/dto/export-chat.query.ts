import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import type { ExportFormat } from '../chat-exporter';

export class ExportChatQuery {
  @ApiPropertyOptional({
    enum: ['json', 'markdown'],
    default: 'json',
    description: '`json`: the export document; `markdown`: the title and the current branch, a section a message',
    example: 'markdown',
  })
  @IsOptional()
  @IsIn(['json', 'markdown'])
  format?: ExportFormat;
}
