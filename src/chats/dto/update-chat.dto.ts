import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, ValidateIf } from 'class-validator';
import { IsId } from '../../common/validation/is-id.decorator';
import { IsNotBlank } from '../../common/validation/is-not-blank.decorator';
import { IsStringMap } from '../../common/validation/is-string-map.decorator';
import { MaxCharacters } from '../../common/validation/max-characters.decorator';
import { ApiClosedSchema } from '../../common/validation/api-closed-schema.decorator';
import { CHAT_LIMITS } from './chat-limits';

/**
 * The bodies Swagger UI's Try it out offers, the first pre-filled. Without them it would build one
 * from the field examples: a `currentMessageId` no chat has (422), and a cleared system prompt.
 */
export const UPDATE_CHAT_EXAMPLES = {
  rename: { summary: 'Rename the chat', value: { title: 'Lisbon, 3 days in May' } },
  metadata: { summary: 'Replace its metadata', value: { metadata: { customerId: 'c_42' } } },
  clear: { summary: 'Clear its system prompt and metadata', value: { systemPrompt: null, metadata: null } },
};

/** Absent fields stay as they are; `null` clears one. */
@ApiClosedSchema()
export class UpdateChatDto {
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    maxLength: CHAT_LIMITS.titleLength,
    example: 'Lisbon, 3 days in May',
  })
  @IsOptional()
  @MaxCharacters(CHAT_LIMITS.titleLength)
  @IsNotBlank()
  @IsString()
  title?: string | null;

  @ApiPropertyOptional({ type: String, nullable: true, maxLength: CHAT_LIMITS.systemPromptLength, example: null })
  @IsOptional()
  @MaxCharacters(CHAT_LIMITS.systemPromptLength)
  @IsNotBlank()
  @IsString()
  systemPrompt?: string | null;

  @ApiPropertyOptional({
    type: 'object',
    nullable: true,
    additionalProperties: { type: 'string', maxLength: CHAT_LIMITS.metadata.maxValueLength },
    maxProperties: CHAT_LIMITS.metadata.maxKeys,
    description: 'Replaces the whole metadata object; null clears it',
    example: { customerId: 'c_42' },
  })
  @IsOptional()
  @IsStringMap(CHAT_LIMITS.metadata)
  metadata?: Record<string, string> | null;

  @ApiPropertyOptional({
    type: String,
    format: 'uuid',
    description:
      'Switches branch: the current branch becomes the path through this message to its newest descendant ' +
      '(the one with the highest seq, or the message itself)',
    example: '0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d',
  })
  @ValidateIf((dto: UpdateChatDto) => dto.currentMessageId !== undefined)
  @IsId()
  currentMessageId?: string;
}
