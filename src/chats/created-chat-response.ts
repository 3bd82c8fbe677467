import { ApiCreatedResponse } from '@nestjs/swagger';
import type { Response } from 'express';
import { IDEMPOTENT_REPLAYED_HEADER } from '../idempotency/idempotency-key.decorator';
import type { CreatedChat } from './chats.service';
import { ChatDto } from './dto/chat.dto';

/** Answers a created chat: `Location` names it, and a repeat of an Idempotency-Key says it is one. */
export function answerCreatedChat(response: Response, { chat, replayed }: CreatedChat): ChatDto {
  response.location(`/chats/${chat.id}`);
  if (replayed) response.setHeader(IDEMPOTENT_REPLAYED_HEADER, 'true');
  return ChatDto.from(chat);
}

/** Documents the 201 of a route that creates a chat. */
export const ApiCreatedChatResponse = () =>
  ApiCreatedResponse({
    type: ChatDto,
    description: 'The new chat; `Location` names it',
    headers: { Location: { description: 'Path of the new chat', schema: { type: 'string' } } },
  });
