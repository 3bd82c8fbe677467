import { Chat } from '../../src/chats/chat';
import { Message } from '../../src/chats/message';
import { parseLlmConfig } from '../../src/config/llm.config';
import { LlmCallMeter } from '../../src/llm/llm-call-meter';
import { Metrics } from '../../src/metrics/metrics';
import { ChatAbstracts } from '../../src/summaries/chat-abstracts';
import { RecordingLlmProvider } from '../support/recording-llm-provider';

const chat: Chat = {
  id: '0198f2c4-0000-7000-8000-000000000001',
  tenantId: 'default',
  title: null,
  systemPrompt: null,
  model: 'gpt-4o-mini',
  metadata: {},
  messageCount: 1,
  createdAt: new Date(0),
  updatedAt: new Date(0),
  lastMessageAt: new Date(0),
  currentMessageId: null,
} as Chat;
const messages = [{ role: 'user', content: 'Where should I eat in Lisbon?', tokenCount: 8 }] as Message[];

describe(ChatAbstracts.name, () => {
  const abstractsWith = (llm: RecordingLlmProvider) => {
    const settings = parseLlmConfig({});
    return new ChatAbstracts(llm, new LlmCallMeter(new Metrics(), llm, settings), settings);
  };

  it('should ask the LLM once per chat state, and again once the chat is forgotten', async () => {
    const llm = new RecordingLlmProvider();
    const abstracts = abstractsWith(llm);
    await abstracts.abstractOf(chat, async () => messages);
    await abstracts.abstractOf(chat, async () => messages);
    expect(llm.calls).toHaveLength(1);

    abstracts.forget(chat.id);
    await abstracts.abstractOf(chat, async () => messages);
    expect(llm.calls).toHaveLength(2);
  });
});
