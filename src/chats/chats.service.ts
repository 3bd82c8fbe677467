import { Injectable } from '@nestjs/common';
import { v7 as uuidv7 } from 'uuid';
import { decodeCursor, encodeCursor, Page } from '../common/pagination/cursor';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { IdempotencyService } from '../idempotency/idempotency.service';
import { Chat, ChatChanges, chatFromJson, ChatKey } from './chat';
import { ChatNotFoundError } from './chat-errors';
import { ChatRepository } from './chat.repository';
import { CreateChatDto } from './dto/create-chat.dto';
import { UpdateChatDto } from './dto/update-chat.dto';

const CHATS_CURSOR_SCOPE = 'chats';
const CREATE_ROUTE = 'POST /chats';

/** What a create records on its Idempotency-Key before it stores the chat. */
interface CreateProgress {
  chatId: string;
}

export interface CreatedChat {
  chat: Chat;
  /** The chat was created by an earlier request with the same Idempotency-Key. */
  replayed: boolean;
}

/** Chats of one tenant at a time: a chat of another tenant is not found, exactly like no chat. */
@Injectable()
export class ChatsService {
  private readonly deletedListeners: ((key: ChatKey) => void)[] = [];

  constructor(
    private readonly chats: ChatRepository,
    private readonly idempotency: IdempotencyService,
    @llmConfig.inject() private readonly llm: LlmConfig,
  ) {}

  /** With an Idempotency-Key, a repeat gets the chat the first request created, as it was then. */
  async create(tenantId: string, input: CreateChatDto, idempotencyKey?: string): Promise<CreatedChat> {
    return this.createOnce({ tenantId, route: CREATE_ROUTE, key: idempotencyKey }, input, (id) =>
      this.chats.createChat({
        id,
        tenantId,
        title: input.title ?? null,
        systemPrompt: input.systemPrompt ?? null,
        model: input.model ?? this.llm.defaultModel,
        metadata: input.metadata ?? {},
      }),
    );
  }

  /**
   * Runs `create` once per Idempotency-Key of the tenant and route: a repeat with the same `body`
   * gets the chat the first request created, as it was then. Without a key it just runs.
   *
   * The chat's id is recorded on the key before the chat is stored, so a repeat that finds the key
   * left running (its outcome could not be recorded) answers with that chat rather than a second,
   * and a store that fails although the chat is there answers with it too.
   */
  async createOnce(
    { tenantId, route, key }: { tenantId: string; route: string; key?: string },
    body: unknown,
    create: (chatId: string) => Promise<Chat>,
  ): Promise<CreatedChat> {
    const start = await this.idempotency.start(key ? { tenantId, route, chatId: '', key } : undefined, body);
    if (start.kind === 'replay') return { chat: chatFromJson(start.outcome), replayed: true };
    const { held } = start;
    try {
      const recordedId = held.progress === null ? null : (JSON.parse(held.progress) as CreateProgress).chatId;
      const earlier = recordedId === null ? null : await this.chats.findChat({ tenantId, chatId: recordedId });
      if (earlier) {
        await held.complete(earlier);
        return { chat: earlier, replayed: true };
      }
      const chatId = recordedId ?? uuidv7();
      if (recordedId === null) await held.recordProgress({ chatId } satisfies CreateProgress);
      let chat: Chat;
      try {
        chat = await create(chatId);
      } catch (error) {
        // Stored all the same, unacknowledged or by an attempt that lost the key to this one: the
        // id is this key's alone.
        const stored = key ? await this.chats.findChat({ tenantId, chatId }).catch(() => null) : null;
        if (!stored) throw error;
        chat = stored;
      }
      await held.complete(chat);
      return { chat, replayed: false };
    } finally {
      await held.release();
    }
  }

  async list(tenantId: string, { limit, cursor }: { limit: number; cursor?: string }): Promise<Page<Chat>> {
    const beforeId = cursor === undefined ? undefined : decodeCursor<string>(cursor, CHATS_CURSOR_SCOPE, 'uuid');
    const rows = await this.chats.listChats(tenantId, { limit: limit + 1, beforeId });
    const data = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    return { data, nextCursor: hasMore ? encodeCursor(CHATS_CURSOR_SCOPE, data[data.length - 1].id) : null };
  }

  async get(key: ChatKey): Promise<Chat> {
    const chat = await this.chats.findChat(key);
    if (!chat) throw new ChatNotFoundError(key.chatId);
    return chat;
  }

  /** Applies the changes; a switch of branch first, so that a bad `currentMessageId` changes nothing. */
  async update(key: ChatKey, input: UpdateChatDto): Promise<Chat> {
    let chat: Chat | null = null;
    if (input.currentMessageId !== undefined) {
      chat = await this.chats.switchBranch(key, input.currentMessageId);
      if (!chat) throw new ChatNotFoundError(key.chatId);
    }
    const changes: ChatChanges = {};
    if (input.title !== undefined) changes.title = input.title;
    if (input.systemPrompt !== undefined) changes.systemPrompt = input.systemPrompt;
    if (input.metadata !== undefined) changes.metadata = input.metadata ?? {};
    if (Object.keys(changes).length > 0) chat = await this.chats.updateChat(key, changes);
    // A PATCH that names no field leaves updatedAt alone.
    else if (chat === null) chat = await this.chats.findChat(key);
    if (!chat) throw new ChatNotFoundError(key.chatId);
    return chat;
  }

  async delete(key: ChatKey): Promise<void> {
    if (!(await this.chats.deleteChat(key))) throw new ChatNotFoundError(key.chatId);
    for (const listener of this.deletedListeners) listener(key);
  }

  /**
   * Calls `listener` after every chat deleted here, so that features let go of what they keep of it
   * in memory (storage deletes what it stores with the chat). It must not throw.
   */
  onDeleted(listener: (key: ChatKey) => void): void {
    this.deletedListeners.push(listener);
  }
}
