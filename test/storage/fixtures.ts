import { NewChat } from '../../src/chats/chat';
import { NewMessage } from '../../src/messages/message';

export const newChat = (overrides: Partial<NewChat> = {}): NewChat => ({
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
