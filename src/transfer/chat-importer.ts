import { Injectable } from '@nestjs/common';
import { setImmediate as nextTurnOfEventLoop } from 'node:timers/promises';
import { v7 as uuidv7 } from 'uuid';
import { ChatImport, ChatRepository, ImportedMessage } from '../chats/chat.repository';
import { ChatsService, CreatedChat } from '../chats/chats.service';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { TokenCounter } from '../llm/token-counter';
import { ImportDocument, parseImportDocument } from './import-document';
import { IMPORT_PATH } from './import-path';

/** Where its Idempotency-Keys apply. */
const IMPORT_ROUTE = `POST /${IMPORT_PATH}`;
/** Characters tokenized between two turns of the event loop: a 16 MB import would hold it for a second. */
const TOKENIZE_SLICE = 256 * 1024;

/** Chats from export documents or plain lists of messages, stored whole or not at all. */
@Injectable()
export class ChatImporter {
  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly tokens: TokenCounter,
    @llmConfig.inject() private readonly llm: LlmConfig,
  ) {}

  /**
   * A bad document is refused (422) before anything is stored or the Idempotency-Key is taken;
   * with a key, a repeat gets the chat the first import created.
   */
  async import(tenantId: string, body: Record<string, unknown>, idempotencyKey?: string): Promise<CreatedChat> {
    const document = await parseImportDocument(body);
    return this.chats.createOnce({ tenantId, route: IMPORT_ROUTE, key: idempotencyKey }, body, async (chatId) =>
      this.repository.importChat(await this.toChatImport(chatId, tenantId, document)),
    );
  }

  /** New ids, made in message order so they ascend with seq; parents and replies named by them. */
  private async toChatImport(chatId: string, tenantId: string, document: ImportDocument): Promise<ChatImport> {
    const importedAt = new Date();
    const ids = document.messages.map(() => uuidv7());
    const idAt = (index: number | null) => (index === null ? null : ids[index]);
    const messages: ImportedMessage[] = [];
    let tokenized = 0;
    for (const [index, message] of document.messages.entries()) {
      messages.push({
        id: ids[index],
        role: message.role,
        content: message.content,
        status: message.status,
        inReplyTo: idAt(message.inReplyTo),
        parentId: idAt(message.parent),
        model: message.model,
        usage: message.usage,
        tokenCount: this.tokens.count(message.content),
        createdAt: (message.createdAt ?? importedAt).toISOString(),
      });
      tokenized += message.content.length;
      if (tokenized >= TOKENIZE_SLICE) {
        tokenized = 0;
        await nextTurnOfEventLoop();
      }
    }
    return {
      chat: {
        id: chatId,
        tenantId,
        title: document.title,
        systemPrompt: document.systemPrompt,
        model: document.model ?? this.llm.defaultModel,
        metadata: document.metadata,
      },
      createdAt: document.createdAt ?? importedAt,
      messages,
      currentMessageId: idAt(document.current),
    };
  }
}
