import type { Message } from '../chats/message';

/**
 * Where a page of hits starts: after the last hit of the page before, this message with this
 * rank. A storage whose ranks move as messages are stored (BM25 weighs each word by the whole
 * index) continues after the message itself, wherever it now ranks; the rank serves when the
 * message is gone, and on a storage whose ranks never move.
 */
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
