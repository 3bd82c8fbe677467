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

describe(`${ContextBuilder.name} across turns`, () => {
  const tokens = new TokenCounter();
  /** Room for the system prompt and 40 one-token messages. */
  const config = {
    llmContextTokens: 40 * MESSAGE_COST + 200 + TokenCounter.REPLY_PRIMING,
    llmMaxOutputTokens: 100,
    systemPrompt: SYSTEM_PROMPT,
  } as AppConfig;
  let repository: InMemoryChatRepository;
  let key: ChatKey;
  const chat = async () => (await repository.findChat(key))!;
  const append = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const seq = (await chat()).messageCount + 1;
      const message = { content: `m${seq}`, status: 'completed' as const, model: null, usage: null, tokenCount: 1 };
      await repository.appendMessage(key, { ...message, role: seq % 2 ? 'user' : 'assistant', inReplyTo: null });
    }
  };
  /** What a builder that keeps nothing between turns gives. */
  const fromScratch = async (throughSeq: number) =>
    new ContextBuilder(repository, tokens, config).build(await chat(), throughSeq);

  beforeEach(async () => {
    repository = new InMemoryChatRepository();
    const created = await repository.createChat({
      tenantId: 'tenant',
      title: null,
      systemPrompt: null,
      model: 'test-model',
      metadata: {},
    });
    key = { tenantId: 'tenant', chatId: created.id };
  });

  it('should read only what was stored since the last turn, and build the same context as a full read', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    const fullReads = jest.spyOn(repository, 'listRecentMessages');
    const newerReads = jest.spyOn(repository, 'listMessages');
    for (let turn = 0; turn < 60; turn++) {
      await append(1);
      const throughSeq = (await chat()).messageCount;
      const context = await builder.build(await chat(), throughSeq);
      expect(context).toEqual(await fromScratch(throughSeq));
      expect(context.at(-1)).toEqual({ role: 'user', content: `m${throughSeq}` });
      await append(1);
    }
    // The first turn reads the history; every later one only the two messages since.
    const [, ...later] = newerReads.mock.calls;
    expect(later.every(([, page]) => page.limit === 2)).toBe(true);
    expect(fullReads.mock.calls.length - 60).toBe(1);
  });

  it('should hand each turn the same frozen messages for the history they share, not copies', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    await append(9);
    const first = await builder.build(await chat(), 9);
    await append(2);
    const second = await builder.build(await chat(), 11);

    second.slice(0, first.length).forEach((message, i) => expect(message).toBe(first[i]));
    expect(second.every((message) => Object.isFrozen(message))).toBe(true);
  });

  it('should take in messages other instances stored, and answer an older message with the history it had', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    await append(9);
    await builder.build(await chat(), 9);
    await append(30); // written elsewhere: seq 10 to 39
    expect(await builder.build(await chat(), 39)).toEqual(await fromScratch(39));
    expect(await builder.build(await chat(), 21)).toEqual(await fromScratch(21));
    await append(200);
    expect(await builder.build(await chat(), 239)).toEqual(await fromScratch(239));
    expect(await builder.build(await chat(), 239)).toEqual(await fromScratch(239));
  });
});
