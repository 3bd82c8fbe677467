import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { RequestWithTenant, tenantIdOf } from '../auth/tenant';
import { ChatKey } from './chat';
import { ChatIdPipe } from './chat-id.pipe';

/**
 * The chat a `/chats/{chatId}…` route addresses, within the caller's tenant. A non-UUID id is an
 * unknown chat (404); document the parameter with `@ApiChatIdParam()`.
 */
export const ChatKeyParam = createParamDecorator((_: unknown, context: ExecutionContext): ChatKey => {
  const request = context.switchToHttp().getRequest<Request & RequestWithTenant>();
  return { tenantId: tenantIdOf(request), chatId: ChatIdPipe.transform(String(request.params.chatId)) };
});
