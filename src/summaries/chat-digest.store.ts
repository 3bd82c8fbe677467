import type { ChatKey } from '../chats/chat';

/** A chat's digest as stored: the last message folded into it, and the digest's own JSON. */
export interface StoredChatDigest {
  lastSeq: number;
  snapshot: string;
}

/**
 * The storage port and DI token for chat digests (see ChatDigest), bound by the storage module
 * next to the ChatRepository, so a digest lives and dies with its chat: after a restart a summary
 * only analyses the messages stored since the digest was saved. A digest is derived data: losing
 * one costs time, never correctness.
 */
export abstract class ChatDigestStore {
  /** The chat's stored digest; null when there is none or the chat is not the key's tenant's. */
  abstract load(key: ChatKey): Promise<StoredChatDigest | null>;

  /**
   * Stores the digest, unless one further along (`lastSeq`) is stored already, so instances
   * racing to save never move a chat's digest backwards; one as far along is replaced (a digest
   * rebuilt after a change of format). Does nothing when the chat is gone.
   */
  abstract save(key: ChatKey, digest: StoredChatDigest): Promise<void>;
}
