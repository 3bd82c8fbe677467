import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import {
  ApiJsonBodyProblemResponses,
  ApiValidationProblemResponse,
} from '../common/problem-details/api-problem-response.decorator';
import { ApiChatIdParam } from './chat-api.decorators';
import { ChatIdPipe } from './chat-id.pipe';
import { ChatsService } from './chats.service';
import { ChatDto, ChatPageDto } from './dto/chat.dto';
import { CreateChatDto } from './dto/create-chat.dto';
import { ListChatsQuery } from './dto/list-chats.query';
import { UpdateChatDto } from './dto/update-chat.dto';

@ApiTags('chats')
@Controller('chats')
export class ChatsController {
  constructor(private readonly chats: ChatsService) {}

  @Post()
  @ApiOperation({ summary: 'Create a chat', description: 'The body is optional; unknown fields are rejected.' })
  @ApiCreatedResponse({
    type: ChatDto,
    description: 'The new chat; `Location` names it',
    headers: { Location: { description: 'Path of the new chat', schema: { type: 'string' } } },
  })
  @ApiValidationProblemResponse('title: title must be shorter than or equal to 200 characters')
  @ApiJsonBodyProblemResponses()
  async create(@Body() body: CreateChatDto, @Res({ passthrough: true }) response: Response): Promise<ChatDto> {
    const chat = await this.chats.create(body);
    response.location(`/chats/${chat.id}`);
    return ChatDto.from(chat);
  }

  @Get()
  @ApiOperation({ summary: 'List chats, newest first' })
  @ApiOkResponse({ type: ChatPageDto })
  @ApiValidationProblemResponse('limit: limit must not be greater than 100')
  async list(@Query() query: ListChatsQuery): Promise<ChatPageDto> {
    const page = await this.chats.list(query);
    return { data: page.data.map(ChatDto.from), nextCursor: page.nextCursor };
  }

  @Get(':chatId')
  @ApiOperation({ summary: 'Read a chat' })
  @ApiChatIdParam()
  @ApiOkResponse({ type: ChatDto })
  async get(@Param('chatId', ChatIdPipe) chatId: string): Promise<ChatDto> {
    return ChatDto.from(await this.chats.get(chatId));
  }

  @Patch(':chatId')
  @ApiOperation({
    summary: 'Rename a chat or change its system prompt or metadata',
    description: 'Absent fields stay; `null` clears a field.',
  })
  @ApiChatIdParam()
  @ApiOkResponse({ type: ChatDto })
  @ApiValidationProblemResponse('model: property model should not exist')
  @ApiJsonBodyProblemResponses()
  async update(@Param('chatId', ChatIdPipe) chatId: string, @Body() body: UpdateChatDto): Promise<ChatDto> {
    return ChatDto.from(await this.chats.update(chatId, body));
  }

  @Delete(':chatId')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a chat and all its messages' })
  @ApiChatIdParam()
  @ApiNoContentResponse({ description: 'Deleted' })
  async delete(@Param('chatId', ChatIdPipe) chatId: string): Promise<void> {
    await this.chats.delete(chatId);
  }
}
