import { Injectable } from '@nestjs/common';
import { isUUID } from 'class-validator';
import { createHash } from 'node:crypto';
import { Message } from '../chats/message';
import { decodeCursor, encodeCursor, Page } from '../common/pagination/cursor';
import { MessageSearch, SearchPosition } from './message-search';
import { searchTermsOf } from './search-terms';
import { Snippet, snippetOf } from './snippet';

export interface SearchResult {
  chatId: string;
  chatTitle: string | null;
  message: Message;
  snippet: Snippet;
}

/** A cursor's position: the last hit's rank and message id, as the service issued them. */
const isSearchPosition = (position: unknown): position is { r: number; m: string } => {
  const { r, m } = (position ?? {}) as { r?: unknown; m?: unknown };
  return typeof r === 'number' && Number.isFinite(r) && typeof m === 'string' && isUUID(m);
};

/** Full-text search of the caller's messages: the query's terms, the storage's index, snippets. */
@Injectable()
export class SearchService {
  constructor(private readonly index: MessageSearch) {}

  async search(tenantId: string, { q, limit, cursor }: { q: string; limit: number; cursor?: string }) {
    const terms = searchTermsOf(q);
    // A cursor belongs to the list of one query: the same words, however they were typed. Named by
    // their hash: 200 characters of words in another script would make a cursor longer than the
    // 512 characters a cursor may have.
    const scope = `search:${createHash('sha256').update(terms.join(' ')).digest('base64url')}`;
    let after: SearchPosition | undefined;
    if (cursor !== undefined) {
      const { r, m } = decodeCursor(cursor, scope, isSearchPosition);
      after = { rank: r, messageId: m };
    }
    const page: Page<SearchResult> = { data: [], nextCursor: null };
    // Only words such as "the": no storage indexes them.
    if (terms.length === 0) return page;
    const hits = await this.index.search({ tenantId, terms, limit: limit + 1, after });
    page.data = hits.slice(0, limit).map(({ message, chatTitle }) => ({
      chatId: message.chatId,
      chatTitle,
      message,
      snippet: snippetOf(message.content, terms),
    }));
    if (hits.length > limit) {
      const last = hits[limit - 1];
      page.nextCursor = encodeCursor(scope, { r: last.rank, m: last.message.id });
    }
    return page;
  }
}
