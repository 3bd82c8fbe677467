import { ChatKey, NewChat } from '../../src/chats/chat';
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
