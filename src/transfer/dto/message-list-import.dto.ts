import { ApiProperty } from '@nestjs/swagger';
import { CreateChatDto } from '../../chats/dto/create-chat.dto';
import { ApiClosedSchema } from '../../common/validation/api-closed-schema.decorator';
import { MAX_MESSAGE_LENGTH } from '../../messages/dto/send-message.dto';
import { MAX_REPLY_LENGTH } from '../../messages/storable-reply';
import { MAX_IMPORTED_MESSAGES } from '../import-document';

export const MESSAGE_LIST_IMPORT_EXAMPLE = {
  title: 'Trip to Lisbon',
  messages: [
    { role: 'system', content: 'You are a friendly travel planner. Keep answers short.' },
    { role: 'user', content: 'What should I see in Lisbon in one day?' },
    { role: 'assistant', content: 'Start at Belém for the tower and pastéis, then ride tram 28 up to Alfama …' },
  ],
};

@ApiClosedSchema()
export class ImportedMessageDto {
  @ApiProperty({
    enum: ['system', 'user', 'assistant'],
    description: "Only the first message may be `system`: it becomes the chat's `systemPrompt`",
    example: 'user',
  })
  role: 'system' | 'user' | 'assistant';

  @ApiProperty({
    description:
      `A user message: 1–${MAX_MESSAGE_LENGTH} characters, not blank. An assistant message: at most ` +
      `${MAX_REPLY_LENGTH} characters, and may be empty or blank. A system message follows the limits of \`systemPrompt\`.`,
    example: 'What should I see in Lisbon in one day?',
  })
  content: string;
}

/** A chat as a plain list of messages, in the OpenAI Chat shape. */
@ApiClosedSchema()
export class MessageListImportDto extends CreateChatDto {
  @ApiProperty({
    type: [ImportedMessageDto],
    maxItems: MAX_IMPORTED_MESSAGES,
    description: 'One branch, in order; the last message becomes the current one',
  })
  messages: ImportedMessageDto[];
}
