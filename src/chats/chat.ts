/** A chat session, as the service keeps it. */
export interface Chat {
  readonly id: string;
  /** The tenant that created it; never shown to callers. */
  readonly tenantId: string;
  readonly title: string | null;
  readonly systemPrompt: string | null;
  readonly model: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly messageCount: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly lastMessageAt: Date | null;
  /** The last message of the branch the chat shows: its newest message unless a client switched. */
  readonly currentMessageId: string | null;
}

/** Names a chat within its tenant: every read and write of a chat goes through one. */
export interface ChatKey {
  readonly tenantId: string;
  readonly chatId: string;
}

export const chatKeyOf = (chat: Chat): ChatKey => ({ tenantId: chat.tenantId, chatId: chat.id });

export interface NewChat {
  /**
   * Chosen by the caller when it must name the chat before it is stored (a create records it on
   * its Idempotency-Key): a new UUIDv7. Storing a second chat under one id throws.
   */
  id?: string;
  tenantId: string;
  title: string | null;
  systemPrompt: string | null;
  model: string;
  metadata: Record<string, string>;
}

/** Fields a PATCH may change; absent fields stay as they are. */
export interface ChatChanges {
  title?: string | null;
  systemPrompt?: string | null;
  metadata?: Record<string, string>;
}

/** A chat from its JSON form (as an Idempotency-Key record keeps it). */
export function chatFromJson(text: string): Chat {
  const chat = JSON.parse(text) as Chat & Record<'createdAt' | 'updatedAt' | 'lastMessageAt', string | null>;
  return {
    ...chat,
    createdAt: new Date(chat.createdAt!),
    updatedAt: new Date(chat.updatedAt!),
    lastMessageAt: chat.lastMessageAt === null ? null : new Date(chat.lastMessageAt),
  };
}
