export type MessageRole = 'user' | 'assistant';
/** `incomplete`: an assistant reply cut short (the client left, the upstream broke). */
export type MessageStatus = 'completed' | 'incomplete';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/** One message of a chat. `seq` runs 1, 2, 3 … per chat with no gaps. */
export interface Message {
  readonly id: string;
  readonly chatId: string;
  readonly seq: number;
  readonly role: MessageRole;
  readonly content: string;
  readonly status: MessageStatus;
  readonly inReplyTo: string | null;
  readonly model: string | null;
  readonly usage: TokenUsage | null;
  /** Tokens of `content`, counted once when stored so no turn re-tokenizes history. */
  readonly tokenCount: number;
  readonly createdAt: Date;
}

export type NewMessage = Omit<Message, 'id' | 'chatId' | 'seq' | 'createdAt'>;

/** A message from its JSON text (as an Idempotency-Key record keeps it). */
export function messageFromJson(json: unknown): Message {
  const message = json as Message & { createdAt: string };
  return { ...message, createdAt: new Date(message.createdAt) };
}
