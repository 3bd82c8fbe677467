import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { PageQuery } from '../../common/pagination/page-query';

export class ListMessagesQuery extends PageQuery({ maxLimit: 1000, defaultLimit: 100 }) {
  @ApiPropertyOptional({
    enum: ['current', 'all'],
    default: 'current',
    description: '`current`: the branch the chat shows, root first; `all`: every message of every branch, by seq',
    example: 'all',
  })
  @IsOptional()
  @IsIn(['current', 'all'])
  branch?: 'current' | 'all';
}
