import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString } from 'class-validator';
import { ApiClosedSchema } from '../../common/validation/api-closed-schema.decorator';
import { IsId } from '../../common/validation/is-id.decorator';
import { IsNotBlank } from '../../common/validation/is-not-blank.decorator';
import { IsRequired } from '../../common/validation/is-required.decorator';
import { MaxCharacters } from '../../common/validation/max-characters.decorator';

export const MAX_MESSAGE_LENGTH = 32_000;

/**
 * The bodies Swagger UI's Try it out offers, the first pre-filled. Without them it would build one
 * from the field examples, with a `parentId` no chat has (422).
 */
export const SEND_MESSAGE_EXAMPLES = {
  next: {
    summary: 'The next message of the current branch',
    value: { content: 'What should I see in Lisbon in one day?' },
  },
  newFirst: {
    summary: 'A new first message: a branch of its own from the start',
    value: { content: 'Plan a weekend in Porto instead.', parentId: null },
  },
};

@ApiClosedSchema()
export class SendMessageDto {
  @ApiProperty({
    maxLength: MAX_MESSAGE_LENGTH,
    description: 'Not blank',
    example: 'What should I see in Lisbon in one day?',
  })
  @MaxCharacters(MAX_MESSAGE_LENGTH)
  @IsNotBlank()
  @IsString()
  @IsRequired()
  content: string;

  @ApiPropertyOptional({
    type: String,
    format: 'uuid',
    nullable: true,
    description:
      'The message this one follows: any message of the chat (to edit a message, send the new text with the ' +
      "edited message's `parentId`), or null for a new first message. Absent: the current branch's last message " +
      'as it is when the turn runs.',
    example: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b',
  })
  @IsOptional()
  @IsId()
  parentId?: string | null;
}
