import { ApiParam } from '@nestjs/swagger';
import { applyDecorators } from '@nestjs/common';
import { ApiProblemResponse } from '../common/problem-details/api-problem-response.decorator';

/** Documents a `{chatId}` path parameter and its 404. */
export const ApiChatIdParam = () =>
  applyDecorators(
    ApiParam({ name: 'chatId', type: String, format: 'uuid', example: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e' }),
    ApiProblemResponse(404, {
      description: 'Chat not found',
      type: 'urn:konko:problem:chat-not-found',
      detail: 'No chat has the id 0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e.',
    }),
  );
