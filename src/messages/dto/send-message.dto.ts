import { ApiProperty } from '@nestjs/swagger';
import { IsString, MaxLength } from 'class-validator';
import { IsNotBlank } from '../../common/validation/is-not-blank.decorator';

export const MAX_MESSAGE_LENGTH = 32_000;

export class SendMessageDto {
  @ApiProperty({
    minLength: 1,
    maxLength: MAX_MESSAGE_LENGTH,
    description: 'Not blank',
    example: 'What should I see in Lisbon in one day?',
  })
  @IsString()
  @IsNotBlank()
  @MaxLength(MAX_MESSAGE_LENGTH)
  content: string;
}
