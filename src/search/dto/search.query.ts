import { ApiProperty } from '@nestjs/swagger';
import { IsString } from 'class-validator';
import { PageQuery } from '../../common/pagination/page-query';
import { IsNotBlank } from '../../common/validation/is-not-blank.decorator';
import { IsRequired } from '../../common/validation/is-required.decorator';
import { MaxCharacters } from '../../common/validation/max-characters.decorator';

export const MAX_QUERY_LENGTH = 200;

export class SearchQueryDto extends PageQuery({ maxLimit: 100, defaultLimit: 20 }) {
  @ApiProperty({
    maxLength: MAX_QUERY_LENGTH,
    description:
      'Words a message must all contain, in any letter case (word stems where the storage supports them; ' +
      'words such as "the" or "and" are left out)',
    example: 'refund delay',
  })
  @MaxCharacters(MAX_QUERY_LENGTH)
  @IsNotBlank()
  @IsString()
  @IsRequired()
  q: string;
}
