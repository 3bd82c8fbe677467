import { Injectable } from '@nestjs/common';
import { decodeCursor, encodeCursor, Page } from '../common/pagination/cursor';
import { AppConfig, InjectAppConfig } from '../config/app-config';
import { Chat, ChatChanges } from './chat';
import { ChatNotFoundError } from './chat-errors';
import { ChatRepository } from './chat.repository';
import { CreateChatDto } from './dto/create-chat.dto';
import { UpdateChatDto } from './dto/update-chat.dto';

const CHATS_CURSOR_SCOPE = 'chats';

@Injectable()
export class ChatsService {
  constructor(
    private readonly chats: ChatRepository,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {}

  create(input: CreateChatDto): Promise<Chat> {
    return this.chats.createChat({
      title: input.title ?? null,
      systemPrompt: input.systemPrompt ?? null,
      model: input.model ?? this.config.llmModel,
      metadata: input.metadata ?? {},
    });
  }

  async list({ limit, cursor }: { limit: number; cursor?: string }): Promise<Page<Chat>> {
    const beforeId = cursor === undefined ? undefined : decodeCursor<string>(cursor, CHATS_CURSOR_SCOPE, 'uuid');
    const rows = await this.chats.listChats({ limit: limit + 1, beforeId });
    const data = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    return { data, nextCursor: hasMore ? encodeCursor(CHATS_CURSOR_SCOPE, data[data.length - 1].id) : null };
  }

  async get(chatId: string): Promise<Chat> {
    const chat = await this.chats.findChat(chatId);
    if (!chat) throw new ChatNotFoundError(chatId);
    return chat;
  }

  async update(chatId: string, input: UpdateChatDto): Promise<Chat> {
    const changes: ChatChanges = {};
    if (input.title !== undefined) changes.title = input.title;
    if (input.systemPrompt !== undefined) changes.systemPrompt = input.systemPrompt;
    if (input.metadata !== undefined) changes.metadata = input.metadata ?? {};
    const chat = await this.chats.updateChat(chatId, changes);
    if (!chat) throw new ChatNotFoundError(chatId);
    return chat;
  }

  async delete(chatId: string): Promise<void> {
    if (!(await this.chats.deleteChat(chatId))) throw new ChatNotFoundError(chatId);
  }
}
