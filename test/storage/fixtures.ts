import { v7 as uuidv7 } from 'uuid';
import { ChatKey, NewChat } from '../../src/chats/chat';
import { ImportedMessage } from '../../src/chats/chat.repository';
import { NewMessage } from '../../src/chats/message';

/** The tenant the repository tests store their chats in, unless a test names another. */
export const TENANT = 'tenant-a';

/** The key of a chat of {@link TENANT}. */
export const key = (chatId: string, tenantId = TENANT): ChatKey => ({ tenantId, chatId });

export const newChat = (overrides: Partial<NewChat> = {}): NewChat => ({
  tenantId: TENANT,
  title: null,
  systemPrompt: null,
  model: 'test-model',
  metadata: {},
  ...overrides,
});

export const userMessage = (content: string, overrides: Partial<NewMessage> = {}): NewMessage => ({
  role: 'user',
  content,
  status: 'completed',
  inReplyTo: null,
  model: null,
  usage: null,
  tokenCount: content.length,
  ...overrides,
});

/**
 * Messages to import, by seq: each entry names its parent by index (null: a root). Ids are made in
 * order, as an import makes them; times are a minute apart from 2026-01-01.
 */
export const importedMessages = (parents: (number | null)[]): ImportedMessage[] => {
  const ids = parents.map(() => uuidv7());
  return parents.map((parent, i) => ({
    id: ids[i],
    role: i % 2 === 0 ? 'user' : 'assistant',
    content: `m${i + 1}`,
    status: 'completed',
    inReplyTo: null,
    parentId: parent === null ? null : ids[parent],
    model: null,
    usage: null,
    tokenCount: 2,
    createdAt: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString(),
  }));
};
