import { Injectable } from '@nestjs/common';
import { ChatKey } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { Message } from '../chats/message';
import { ChatAbstracts } from './chat-abstracts';
import { ChatDigests } from './chat-digests';
import { ChatSummary } from './summary';

const PAGE = 1000;

/**
 * Chat summaries. Messages are append-only, so each chat keeps a digest that new messages are
 * folded into (ChatDigests): a summary after one more turn analyses just that turn's messages. A
 * deleted chat's digest and abstract leave memory with it.
 */
@Injectable()
export class SummariesService {
  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly digests: ChatDigests,
    private readonly abstracts: ChatAbstracts,
  ) {
    chats.onDeleted((key) => {
      void digests.forget(key);
      abstracts.forget(key.chatId);
    });
  }

  async summarize(key: ChatKey, { withAbstract = false } = {}): Promise<ChatSummary> {
    const chat = await this.chats.get(key);
    const digest = await this.digests.current(key);
    const summary = digest.summary(chat);
    if (!withAbstract) return summary;
    return { ...summary, abstract: await this.abstracts.abstractOf(chat, () => this.messagesAfter(key, 0)) };
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
