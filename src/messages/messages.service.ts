import { Injectable } from '@nestjs/common';
import { Chat } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { decodeCursor, encodeCursor, Page } from '../common/pagination/cursor';
import { AppConfig, InjectAppConfig } from '../config/app-config';
import { LlmError, LlmUpstreamError } from '../llm/llm-errors';
import { LlmProvider, LlmReply } from '../llm/llm-provider';
import { TokenCounter } from '../llm/token-counter';
import { ContextBuilder } from './context-builder';
import { Message } from './message';
import { ReplyFailedError } from './message-errors';

export interface Turn {
  userMessage: Message;
  assistantMessage: Message;
}

const messagesCursorScope = (chatId: string) => `messages:${chatId}`;

@Injectable()
export class MessagesService {
  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly context: ContextBuilder,
    private readonly llm: LlmProvider,
    private readonly tokens: TokenCounter,
    @InjectAppConfig() private readonly config: AppConfig,
  ) {}

  /**
   * One turn: store the user message, ask the LLM with the chat's context, store the reply.
   * The whole turn holds the chat's lock, so the reply to message n is generated with messages
   * 1 … n and stored as n + 1, whatever else arrives meanwhile.
   */
  async sendMessage(chatId: string, content: string, signal?: AbortSignal): Promise<Turn> {
    const contentTokens = this.tokens.count(content);
    this.context.assertFits(await this.chats.get(chatId), contentTokens);

    return this.repository.withChatLock(chatId, async () => {
      const chat = await this.chats.get(chatId);
      const userMessage = await this.repository.appendMessage(chatId, {
        role: 'user',
        content,
        status: 'completed',
        inReplyTo: null,
        model: null,
        usage: null,
        tokenCount: contentTokens,
      });
      const reply = await this.generateReply(chat, userMessage, signal);
      const assistantMessage = await this.repository.appendMessage(chatId, {
        role: 'assistant',
        content: reply.content,
        status: 'completed',
        inReplyTo: userMessage.id,
        model: reply.model,
        usage: reply.usage,
        tokenCount: this.tokens.count(reply.content),
      });
      return { userMessage, assistantMessage };
    });
  }

  async listMessages(chatId: string, { limit, cursor }: { limit: number; cursor?: string }): Promise<Page<Message>> {
    await this.chats.get(chatId);
    const scope = messagesCursorScope(chatId);
    const afterSeq = cursor === undefined ? undefined : decodeCursor<number>(cursor, scope, 'number');
    const rows = await this.repository.listMessages(chatId, { limit: limit + 1, afterSeq });
    const data = rows.slice(0, limit);
    return { data, nextCursor: rows.length > limit ? encodeCursor(scope, data[data.length - 1].seq) : null };
  }

  /** Any upstream failure keeps the stored user message and reports it with the error. */
  private async generateReply(chat: Chat, userMessage: Message, signal?: AbortSignal): Promise<LlmReply> {
    try {
      const messages = await this.context.build(chat);
      return await this.llm.complete({
        model: chat.model,
        messages,
        maxOutputTokens: this.config.llmMaxOutputTokens,
        signal,
      });
    } catch (error) {
      const failure =
        error instanceof LlmError ? error : new LlmUpstreamError('The language model provider failed unexpectedly.');
      throw new ReplyFailedError(failure, userMessage);
    }
  }
}
