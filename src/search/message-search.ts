import type { Message } from '../chats/message';

/** Where a page of hits starts: after the hit of this rank and message id. */
export interface SearchPosition {
  rank: number;
  messageId: string;
}

export interface SearchQuery {
  tenantId: string;
  /** Lower-case words, without stop words (search-terms.ts); a message must contain every one. */
  terms: readonly string[];
  limit: number;
  after?: SearchPosition;
}

export interface SearchHit {
  message: Message;
  chatTitle: string | null;
  /** How well it matches, higher first, by the storage's own measure. */
  rank: number;
}

/**
 * The storage's full-text search of a tenant's messages, every chat and every branch: the DI
 * token the storage module binds. The tenant is matched inside the query, and a deleted chat's
 * messages are never found. Best match first, then newest (message id, descending).
 */
export abstract class MessageSearch {
  abstract search(query: SearchQuery): Promise<SearchHit[]>;
}
