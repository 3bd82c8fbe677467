import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { ChatKey } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { Message } from '../messages/message';
import { ChatAbstracts } from './chat-abstracts';
import { ChatDigest } from './chat-digest';
import { ChatSummary } from './summary';
import { TextAnalyzer } from './text-analyzer';

const PAGE = 1000;

/**
 * Chat summaries. Messages are append-only, so each chat keeps a digest that new messages are
 * folded into: a summary after one more turn analyses just that turn's messages.
 */
@Injectable()
export class SummariesService {
  private readonly digests = new LRUCache<string, ChatDigest>({ max: 1000 });

  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly analyzer: TextAnalyzer,
    private readonly abstracts: ChatAbstracts,
  ) {}

  async summarize(key: ChatKey, { withAbstract = false } = {}): Promise<ChatSummary> {
    const chat = await this.chats.get(key);
    const digest = await this.digestOf(key);
    const summary = digest.summary(chat);
    if (!withAbstract) return summary;
    return { ...summary, abstract: await this.abstracts.abstractOf(chat, () => this.messagesAfter(key, 0)) };
  }

  /** Deleted chats' digests age out of the LRU; a chat id is never reused (UUIDv7). */
  private async digestOf(key: ChatKey): Promise<ChatDigest> {
    let digest = this.digests.get(key.chatId);
    if (!digest) {
      digest = new ChatDigest();
      this.digests.set(key.chatId, digest);
    }
    for (const message of await this.messagesAfter(key, digest.lastSeq)) {
      // A concurrent request may have folded it in meanwhile.
      if (message.seq > digest.lastSeq) digest.add(message, this.analyzer.analyze(message.content));
    }
    return digest;
  }

  private async messagesAfter(key: ChatKey, afterSeq: number): Promise<Message[]> {
    const messages: Message[] = [];
    for (;;) {
      const last = messages.length > 0 ? messages[messages.length - 1].seq : afterSeq;
      const page = await this.repository.listMessages(key, { limit: PAGE, afterSeq: last });
      messages.push(...page);
      if (page.length < PAGE) return messages;
    }
  }
}
