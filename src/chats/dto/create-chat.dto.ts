import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString } from 'class-validator';
import { IsNotBlank } from '../../common/validation/is-not-blank.decorator';
import { IsStringMap } from '../../common/validation/is-string-map.decorator';
import { MaxCharacters } from '../../common/validation/max-characters.decorator';
import { ApiClosedSchema } from '../../common/validation/api-closed-schema.decorator';
import { CHAT_LIMITS } from './chat-limits';

/**
 * The bodies Swagger UI's Try it out offers, the first pre-filled. Without them it would send every
 * field's example, `model` too: chats tried from /docs would ask for gpt-4.1-mini whatever LLM_MODEL is.
 */
export const CREATE_CHAT_EXAMPLES = {
  planner: {
    summary: 'A title, a system prompt and metadata; the model is LLM_MODEL',
    value: {
      title: 'Trip to Lisbon',
      systemPrompt: 'You are a friendly travel planner. Keep answers short.',
      metadata: { customerId: 'c_42', channel: 'web' },
    },
  },
  defaults: { summary: "Every default: no title, the service's system prompt and model", value: {} },
};

@ApiClosedSchema()
export class CreateChatDto {
  @ApiPropertyOptional({ type: String, nullable: true, maxLength: CHAT_LIMITS.titleLength, example: 'Trip to Lisbon' })
  @IsOptional()
  @MaxCharacters(CHAT_LIMITS.titleLength)
  @IsNotBlank()
  @IsString()
  title?: string | null;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    maxLength: CHAT_LIMITS.systemPromptLength,
    description: 'Instructions sent first in every turn; the service default (SYSTEM_PROMPT) when absent',
    example: 'You are a friendly travel planner. Keep answers short.',
  })
  @IsOptional()
  @MaxCharacters(CHAT_LIMITS.systemPromptLength)
  @IsNotBlank()
  @IsString()
  systemPrompt?: string | null;

  @ApiPropertyOptional({
    maxLength: CHAT_LIMITS.modelLength,
    description: "Model for this chat's replies; LLM_MODEL when absent",
    example: 'gpt-4.1-mini',
  })
  @IsOptional()
  @MaxCharacters(CHAT_LIMITS.modelLength)
  @IsNotBlank()
  @IsString()
  model?: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string', maxLength: CHAT_LIMITS.metadata.maxValueLength },
    maxProperties: CHAT_LIMITS.metadata.maxKeys,
    description: 'Your own labels: at most 16 keys of up to 64 characters, string values of up to 512',
    example: { customerId: 'c_42', channel: 'web' },
  })
  @IsOptional()
  @IsStringMap(CHAT_LIMITS.metadata)
  metadata?: Record<string, string> | null;
}
