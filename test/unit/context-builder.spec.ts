import { ChatKey } from '../../src/chats/chat';
import type { AppConfig } from '../../src/config/app-config';
import { TokenCounter } from '../../src/llm/token-counter';
import { ContextBuilder } from '../../src/messages/context-builder';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';

const SYSTEM_PROMPT = 'You are terse.';
const MESSAGE_COST = 1 + TokenCounter.MESSAGE_OVERHEAD;

describe(ContextBuilder.name, () => {
  it('should take the newest messages that fit from a history longer than many reads', async () => {
    const repository = new InMemoryChatRepository();
    const tokens = new TokenCounter();
    const chat = await repository.createChat({
      tenantId: 'tenant',
      title: null,
      systemPrompt: SYSTEM_PROMPT,
      model: 'test-model',
      metadata: {},
    });
    const key: ChatKey = { tenantId: 'tenant', chatId: chat.id };
    for (let i = 1; i <= 1500; i++) {
      const message = { content: `m${i}`, status: 'completed' as const, model: null, usage: null, tokenCount: 1 };
      await repository.appendMessage(key, { ...message, role: i % 2 ? 'user' : 'assistant', inReplyTo: null });
    }
    // Room for the system prompt and exactly 1,000 one-token messages.
    const fits = 1000;
    const systemCost = tokens.count(SYSTEM_PROMPT) + TokenCounter.MESSAGE_OVERHEAD;
    const config = {
      llmContextTokens: systemCost + fits * MESSAGE_COST + 100 + TokenCounter.REPLY_PRIMING,
      llmMaxOutputTokens: 100,
      systemPrompt: 'unused',
    } as AppConfig;
    const builder = new ContextBuilder(repository, tokens, config);

    const context = await builder.build((await repository.findChat(key))!, 1400);

    expect(context[0]).toEqual({ role: 'system', content: SYSTEM_PROMPT });
    expect(context.slice(1).map((m) => m.content)).toEqual(Array.from({ length: fits }, (_, i) => `m${401 + i}`));
  });
});
