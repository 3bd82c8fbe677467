import type { ErrorKind } from '../common/errors/domain-error';

export type MessageRole = 'user' | 'assistant';
/**
 * `incomplete`: an assistant reply cut short: stopped (POST …/stop, shutdown's grace ran out), its
 * client left (with CLIENT_DISCONNECT=stop), the upstream broke, or the model stopped at its token
 * limit or content filter.
 */
export type MessageStatus = 'completed' | 'incomplete';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/**
 * One message of a chat. `seq` runs 1, 2, 3 … per chat with no gaps, in the order the chat
 * received its messages, across every branch. The messages form a tree by `parentId`.
 */
export interface Message {
  readonly id: string;
  readonly chatId: string;
  readonly seq: number;
  readonly role: MessageRole;
  readonly content: string;
  readonly status: MessageStatus;
  readonly inReplyTo: string | null;
  /** The message it follows in its branch; null for the first message of a branch. */
  readonly parentId: string | null;
  readonly model: string | null;
  readonly usage: TokenUsage | null;
  /** Tokens of `content`, counted once when stored so no turn re-tokenizes history. */
  readonly tokenCount: number;
  /**
   * When it was stored: ISO 8601 in UTC with milliseconds, as the API shows it. A string, not a
   * Date: a Date holds 112 B of heap, a fifth of what a stored message costs in memory.
   */
  readonly createdAt: string;
  /**
   * Set on an `incomplete` reply stored just before its turn failed (the upstream broke, the
   * service stopped, or the client left with CLIENT_DISCONNECT=stop): the failure its turn's stream
   * ended with, for a resume on any instance to tell again. Absent on every other message.
   */
  readonly failure?: ReplyFailure;
}

/** A turn's failure as its stream's `error` event told it: what its problem document needs. */
export interface ReplyFailure {
  readonly kind: ErrorKind;
  readonly code: string;
  readonly title: string;
  readonly detail: string;
}

export type NewMessage = Omit<Message, 'id' | 'chatId' | 'seq' | 'createdAt' | 'parentId'> & {
  /**
   * Chosen by the caller when it must name the message before it is stored (a turn records its
   * reply's id for a repeat): a UUIDv7 made after every message of the chat stored so far.
   */
  id?: string;
  /**
   * The message it follows: a message of the chat, or null for a new first message. Absent, it
   * follows the chat's current message as the append finds it, so appends in a row form one line.
   */
  parentId?: string | null;
};

/** A message from its JSON form (an Idempotency-Key record, a relayed event): every field is JSON already. */
export function messageFromJson(json: unknown): Message {
  return json as Message;
}
