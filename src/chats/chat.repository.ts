import type { Message, NewMessage } from './message';
import type { Chat, ChatChanges, ChatKey, NewChat } from './chat';

/**
 * A chat's turn lock as its holder has it ({@link ChatRepository.withChatLock}): writes made under
 * the lock pass it on, so a storage shared by instances can refuse them once the lock was lost.
 */
export interface ChatLock {
  readonly chatId: string;
  /** Who holds it: unique to this holding. */
  readonly holder: string;
}

/** What an LLM context needs of a stored message, and where it sits in its branch. */
export type ContextMessage = Pick<Message, 'id' | 'parentId' | 'seq' | 'role' | 'content' | 'tokenCount'>;

/** A message of an imported chat, as it is to be stored: its id and parent are already the new ones. */
export type ImportedMessage = Omit<Message, 'chatId' | 'seq'>;

/** A whole chat to store at once, from an export document or a list of messages. */
export interface ChatImport {
  chat: NewChat;
  createdAt: Date;
  /**
   * By seq, each after its parent and the message it replies to. Ids are UUIDv7 made in this
   * order, so they ascend with seq as the ids of appended messages do.
   */
  messages: ImportedMessage[];
  /** The last message of the current branch, one with no children; null when there are no messages. */
  currentMessageId: string | null;
}

/** A message just stored, and its chat as that write left it ({@link ChatRepository.appendMessageWithChat}). */
export interface AppendedMessage {
  message: Message;
  chat: Chat;
}

/** A page of the branch that ends at the message `throughId`: the path from the root to it. */
export interface BranchPage {
  throughId: string;
  limit: number;
}

/**
 * The storage port and DI token for chats and their messages. The storage module binds an
 * implementation; nothing else knows which one.
 *
 * Every chat belongs to one tenant, and every read and write names it ({@link ChatKey}): each
 * implementation matches the tenant in the same lookup as the chat (a SQL `where`, the in-memory
 * record's check), so a chat of another tenant behaves exactly as a chat that does not exist.
 *
 * Chats are ordered by id (UUIDv7, so by creation); messages by `seq`. A chat's messages form a
 * tree (`parentId`); a *branch* is the path from a root to one message, and `seq` increases along
 * it. Reading a branch costs the same however many other branches the chat has.
 */
export abstract class ChatRepository {
  abstract createChat(chat: NewChat): Promise<Chat>;

  /**
   * Creates the chat with all its messages, all or nothing, numbered 1, 2, 3 … in the given
   * order. Its `updatedAt` is now; its `lastMessageAt` the last message's time. Throws
   * UnknownMessageIdError when a `parentId` names no earlier message (nothing is stored then).
   */
  abstract importChat(chat: ChatImport): Promise<Chat>;

  abstract findChat(key: ChatKey): Promise<Chat | null>;

  /** The tenant's chats, newest first, starting after the chat `beforeId` (exclusive) when given. */
  abstract listChats(tenantId: string, page: { limit: number; beforeId?: string }): Promise<Chat[]>;

  /** Applies the changes; null when the chat does not exist. */
  abstract updateChat(key: ChatKey, changes: ChatChanges): Promise<Chat | null>;

  /**
   * Gives an untitled chat a title, atomically: a title set meanwhile (by the user) is never
   * overwritten. Returns the updated chat, or null when the chat is gone or already has a title.
   */
  abstract setTitleIfUntitled(key: ChatKey, title: string): Promise<Chat | null>;

  /** Deletes the chat and its messages; false when it did not exist. */
  abstract deleteChat(key: ChatKey): Promise<boolean>;

  /**
   * Stores the message as the chat's next `seq`, after its parent (see NewMessage.parentId), makes
   * it the chat's current message and updates the chat's counters, in one write. Appends that
   * follow the current message may run at once and form one line in the order they are written;
   * appends with a `parentId` must hold the chat's lock. Under the lock, `lock` is that lock: the
   * write is refused (ChatLeaseLostError) if the lock was lost meanwhile. Throws ChatNotFoundError when the chat is gone, and UnknownMessageIdError when
   * `parentId` names no message of the chat (nothing is stored then).
   *
   * `lastUnderLock` says this is the lock's last write: a storage shared by instances may let go
   * of the lock with it, so other instances can take the chat at once and the end of the work
   * costs no write of its own. The work must write nothing more under the lock after it.
   */
  abstract appendMessage(
    key: ChatKey,
    message: NewMessage,
    lock?: ChatLock,
    options?: { lastUnderLock?: boolean },
  ): Promise<Message>;

  /**
   * {@link appendMessage} under the chat's lock, answering the chat too, as that write left it: its
   * settings as they are now, whatever changed them before the lock was taken (a PATCH), and its
   * counters and current message with the new one. A turn reads the chat from it, in the same write.
   */
  abstract appendMessageWithChat(key: ChatKey, message: NewMessage, lock: ChatLock): Promise<AppendedMessage>;

  /** The chat's message with that id; null when there is none. */
  abstract findMessage(key: ChatKey, messageId: string): Promise<Message | null>;

  /**
   * Every message of the chat, every branch, ascending by seq, starting after `afterSeq` when
   * given; empty when the chat does not exist.
   */
  abstract listMessages(key: ChatKey, page: { limit: number; afterSeq?: number }): Promise<Message[]>;

  /**
   * The branch through `throughId`, root first (ascending by seq), starting after `afterSeq` when
   * given; empty when that message is not the chat's.
   */
  abstract listBranch(key: ChatKey, page: BranchPage & { afterSeq?: number }): Promise<Message[]>;

  /**
   * The branch through `throughId`, newest first: only what a context needs of each, since a
   * context reads many messages. The next page is the branch through the last one's parent.
   */
  abstract listRecentMessages(key: ChatKey, page: BranchPage): Promise<ContextMessage[]>;

  /**
   * Switches the chat to the branch through `messageId`: its current message becomes that
   * message's newest descendant (the one with the highest seq, or the message itself), in one step
   * with respect to appends. Returns the chat; null when the chat does not exist. Throws
   * UnknownMessageIdError (field `currentMessageId`) when the message is not the chat's.
   */
  abstract switchBranch(key: ChatKey, messageId: string): Promise<Chat | null>;

  /**
   * Runs `work` while holding the chat's exclusive turn lock, which it is given to pass on to its
   * writes. Callers for one chat run one at a time, first come first served; different chats never
   * wait for each other. The lock guards no data by itself: callers read and write through the
   * methods above, which check the tenant.
   *
   * A caller whose `signal` aborts while it waits leaves the line at once, whatever holds the lock
   * (a turn of another instance too): it rejects with the signal's reason, `work` never runs, and
   * the callers behind it keep their order. Once the lock is held the signal is `work`'s to heed.
   */
  abstract withChatLock<T>(chatId: string, work: (lock: ChatLock) => Promise<T>, signal?: AbortSignal): Promise<T>;
}
