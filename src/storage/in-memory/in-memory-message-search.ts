import MiniSearch from 'minisearch';
import type { Message } from '../../chats/message';
import { MessageSearch, SearchHit, SearchQuery } from '../../search/message-search';
import { isStopWord, stemOf, wordsOf } from '../../search/search-terms';
import { InMemoryChatRepository } from './in-memory-chat.repository';

interface IndexedMessage {
  id: string;
  chatId: string;
  content: string;
}

/** Indexed as PostgreSQL's `english` configuration does: stop words out, Porter2 stems. */
const termOf = (word: string): string | null => (isStopWord(word) ? null : stemOf(word));

/**
 * Search in memory with MiniSearch (BM25), an index per tenant. A tenant's index is built the
 * first time it searches, and from then on takes in every message stored and drops every chat
 * deleted: a tenant that never searches costs neither memory nor time on its turns.
 */
export class InMemoryMessageSearch extends MessageSearch {
  private readonly indexes = new Map<string, MiniSearch<IndexedMessage>>();

  constructor(private readonly chats: InMemoryChatRepository) {
    super();
    chats.listen({
      stored: (tenantId, message) => this.indexes.get(tenantId)?.add(indexed(message)),
      deleted: (tenantId, messages) => {
        const index = this.indexes.get(tenantId);
        if (index) for (const { id } of messages) index.discard(id);
      },
    });
  }

  async search({ tenantId, terms, limit, after }: SearchQuery): Promise<SearchHit[]> {
    const found = this.indexOf(tenantId).search(terms.join(' '), { combineWith: 'AND', prefix: false, fuzzy: false });
    found.sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    let start = 0;
    if (after) {
      // BM25's scores move as the tenant's messages are stored: the page goes on after its last hit.
      const last = found.findIndex((r) => r.id === after.messageId);
      start =
        last >= 0
          ? last + 1
          : found.findIndex((r) => r.score < after.rank || (r.score === after.rank && r.id < after.messageId));
    }
    const hits: SearchHit[] = [];
    for (const result of found.slice(start < 0 ? found.length : start)) {
      if (hits.length === limit) break;
      const stored = this.chats.storedMessage(tenantId, result.chatId as string, result.id as string);
      if (stored) hits.push({ message: stored.message, chatTitle: stored.chat.title, rank: result.score });
    }
    return hits;
  }

  private indexOf(tenantId: string): MiniSearch<IndexedMessage> {
    let index = this.indexes.get(tenantId);
    if (!index) {
      index = new MiniSearch<IndexedMessage>({
        fields: ['content'],
        storeFields: ['chatId'],
        tokenize: wordsOf,
        processTerm: termOf,
      });
      for (const message of this.chats.messagesOfTenant(tenantId)) index.add(indexed(message));
      this.indexes.set(tenantId, index);
    }
    return index;
  }
}

const indexed = ({ id, chatId, content }: Message): IndexedMessage => ({ id, chatId, content });
