import { Body, Controller, Delete, Get, HttpCode, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBody, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import {
  ApiJsonBodyProblemResponses,
  ApiValidationProblemResponse,
} from '../common/problem-details/api-problem-response.decorator';
import { ApiUnknownFieldResponse, NoFieldsPipe } from '../common/validation/no-fields.pipe';
import { ApiChatIdParam } from './chat-api.decorators';
import { TenantId } from '../auth/tenant-id.decorator';
import { ApiIdempotencyKey, IdempotencyKeyHeader } from '../idempotency/idempotency-key.decorator';
import { ChatKey } from './chat';
import { ChatKeyParam } from './chat-key.decorator';
import { ChatsService } from './chats.service';
import { answerCreatedChat, ApiCreatedChatResponse } from './created-chat-response';
import { ChatDto, ChatPageDto } from './dto/chat.dto';
import { CREATE_CHAT_EXAMPLES, CreateChatDto } from './dto/create-chat.dto';
import { ListChatsQuery } from './dto/list-chats.query';
import { UPDATE_CHAT_EXAMPLES, UpdateChatDto } from './dto/update-chat.dto';

@ApiTags('chats')
@Controller('chats')
export class ChatsController {
  constructor(private readonly chats: ChatsService) {}

  @Post()
  @ApiOperation({ summary: 'Create a chat', description: 'The body is optional; unknown fields are rejected.' })
  @ApiIdempotencyKey('the same chat')
  @ApiBody({ type: CreateChatDto, required: false, examples: CREATE_CHAT_EXAMPLES })
  @ApiCreatedChatResponse()
  @ApiValidationProblemResponse('title: title must be shorter than or equal to 200 characters')
  @ApiJsonBodyProblemResponses()
  async create(
    @TenantId() tenantId: string,
    @Body() body: CreateChatDto,
    @Query(NoFieldsPipe) _query: void,
    @IdempotencyKeyHeader() idempotencyKey: string | undefined,
    @Res({ passthrough: true }) response: Response,
  ): Promise<ChatDto> {
    return answerCreatedChat(response, await this.chats.create(tenantId, body, idempotencyKey));
  }

  @Get()
  @ApiOperation({ summary: 'List chats, newest first' })
  @ApiOkResponse({ type: ChatPageDto })
  @ApiValidationProblemResponse('limit: limit must not be greater than 100')
  async list(@TenantId() tenantId: string, @Query() query: ListChatsQuery): Promise<ChatPageDto> {
    const page = await this.chats.list(tenantId, query);
    return { data: page.data.map(ChatDto.from), nextCursor: page.nextCursor };
  }

  @Get(':chatId')
  @ApiOperation({ summary: 'Read a chat' })
  @ApiChatIdParam()
  @ApiOkResponse({ type: ChatDto })
  @ApiUnknownFieldResponse()
  async get(@ChatKeyParam() chat: ChatKey, @Query(NoFieldsPipe) _query: void): Promise<ChatDto> {
    return ChatDto.from(await this.chats.get(chat));
  }

  @Patch(':chatId')
  @ApiOperation({
    summary: 'Rename a chat, change its system prompt or metadata, or switch its branch',
    description:
      'Absent fields stay; `null` clears a field. `currentMessageId` switches branch: the current branch becomes ' +
      'the path through that message to its newest descendant.',
  })
  @ApiChatIdParam()
  // No body is taken as `{}`: every field absent.
  @ApiBody({ type: UpdateChatDto, required: false, examples: UPDATE_CHAT_EXAMPLES })
  @ApiOkResponse({ type: ChatDto })
  @ApiValidationProblemResponse(
    'currentMessageId: no message of this chat has the id 0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d',
  )
  @ApiJsonBodyProblemResponses()
  async update(
    @ChatKeyParam() chat: ChatKey,
    @Body() body: UpdateChatDto,
    @Query(NoFieldsPipe) _query: void,
  ): Promise<ChatDto> {
    return ChatDto.from(await this.chats.update(chat, body));
  }

  @Delete(':chatId')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a chat and all its messages' })
  @ApiChatIdParam()
  @ApiNoContentResponse({ description: 'Deleted' })
  @ApiUnknownFieldResponse()
  async delete(@ChatKeyParam() chat: ChatKey, @Query(NoFieldsPipe) _query: void): Promise<void> {
    await this.chats.delete(chat);
  }
}
