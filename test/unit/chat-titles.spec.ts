import { parseLlmConfig } from '../../src/config/llm.config';
import { LlmCallMeter } from '../../src/llm/llm-call-meter';
import { OfflineLlmProvider } from '../../src/llm/offline-llm.provider';
import { TokenCounter } from '../../src/llm/token-counter';
import { Metrics } from '../../src/metrics/metrics';
import { ChatTitler } from '../../src/summaries/chat-titles';
import { TextAnalyzer } from '../../src/summaries/text-analyzer';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';

const titlerWith = (env: Record<string, string>, analyzer = new TextAnalyzer()) => {
  const llm = new OfflineLlmProvider(new TokenCounter());
  const settings = parseLlmConfig(env);
  const llmCalls = new LlmCallMeter(new Metrics(), llm, settings);
  return new ChatTitler(new InMemoryChatRepository(), analyzer, llm, llmCalls, settings);
};

describe(ChatTitler.name, () => {
  const titler = titlerWith({});

  it.each([
    ["What's the weather like in Paris in April?", "What's the weather like in Paris in April"],
    ['how do I reset my password', 'How do I reset my password'],
    [
      'Hi! My partner and I are planning a long weekend in Lisbon in May. We are so excited!',
      'My partner and I are planning a long weekend in Lisbon…',
    ],
    [
      'Our Node.js service uses a PostgreSQL connection pool with the pg library. Under load, queries fail.',
      'Our Node.js service uses a PostgreSQL connection pool…',
    ],
    [
      'This is ridiculous. My order was supposed to arrive two weeks ago and it still has not shipped.',
      'My order was supposed to arrive two weeks ago and it still…',
    ],
  ])('should title %j as %j', (message, title) => {
    expect(titler.titleFromMessage(message)).toBe(title);
  });

  it('should cut long messages at a word boundary, never mid-word', () => {
    const message =
      'Supercalifragilistic extraordinarily comprehensive documentation requirements for international logistics';
    const title = titler.titleFromMessage(message)!;
    expect(title.length).toBeLessThanOrEqual(61);
    expect(title.endsWith('…')).toBe(true);
    for (const word of title.replace('…', '').split(' ')) expect(message.split(' ')).toContain(word);
  });

  it('should give no title to a message that names nothing', () => {
    expect(titler.titleFromMessage('Hi!')).toBeNull();
    expect(titler.titleFromMessage('   ')).toBeNull();
  });

  describe('a draft worked out while the first reply is generated', () => {
    const chat = { tenantId: 'tenant-a', chatId: 'chat-1' };

    it('should be the title of the first message', async () => {
      const message = 'how do I reset my password';
      await expect(titlerWith({}).draftFromMessage(chat, message)).resolves.toBe(titler.titleFromMessage(message));
    });

    it.each(['llm', 'off'])('should not be drafted with AUTO_TITLE=%s', (autoTitle) => {
      expect(
        titlerWith({ AUTO_TITLE: autoTitle }).draftFromMessage(chat, 'how do I reset my password'),
      ).toBeUndefined();
    });

    it('should be null, not a rejection, when the analysis fails', async () => {
      const analyzer = new TextAnalyzer();
      jest.spyOn(analyzer, 'analyze').mockImplementation(() => {
        throw new Error('analysis failed');
      });
      await expect(titlerWith({}, analyzer).draftFromMessage(chat, 'how do I reset my password')).resolves.toBeNull();
    });
  });
});
