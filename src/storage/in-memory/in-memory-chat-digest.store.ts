import { ChatKey } from '../../chats/chat';
import { ChatDigestStore, StoredChatDigest } from '../../summaries/chat-digest.store';
import { InMemoryChatRepository } from './in-memory-chat.repository';

/** Digests kept on the in-memory chats' records, so a deleted chat takes its digest with it. */
export class InMemoryChatDigestStore extends ChatDigestStore {
  constructor(private readonly chats: InMemoryChatRepository) {
    super();
  }

  async load(key: ChatKey): Promise<StoredChatDigest | null> {
    return this.chats.loadDigest(key);
  }

  async save(key: ChatKey, digest: StoredChatDigest): Promise<void> {
    this.chats.saveDigest(key, digest);
  }
}
