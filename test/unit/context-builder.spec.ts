import { ChatKey } from '../../src/chats/chat';
import { parseLlmConfig } from '../../src/config/llm.config';
import { TokenCounter } from '../../src/llm/token-counter';
import { ContextBuilder } from '../../src/messages/context-builder';
import { Message } from '../../src/chats/message';
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
    const config = parseLlmConfig({
      LLM_CONTEXT_TOKENS: String(systemCost + fits * MESSAGE_COST + 100 + TokenCounter.REPLY_PRIMING),
      LLM_MAX_OUTPUT_TOKENS: '100',
      SYSTEM_PROMPT: 'unused',
    });
    const builder = new ContextBuilder(repository, tokens, config);

    const [answered] = await repository.listMessages(key, { limit: 1, afterSeq: 1399 });
    const context = await builder.build((await repository.findChat(key))!, answered);

    expect(context[0]).toEqual({ role: 'system', content: SYSTEM_PROMPT });
    expect(context.slice(1).map((m) => m.content)).toEqual(Array.from({ length: fits }, (_, i) => `m${401 + i}`));
  });
});

describe(`${ContextBuilder.name} across turns`, () => {
  const tokens = new TokenCounter();
  /** Room for the system prompt and 40 one-token messages. */
  const config = parseLlmConfig({
    LLM_CONTEXT_TOKENS: String(40 * MESSAGE_COST + 200 + TokenCounter.REPLY_PRIMING),
    LLM_MAX_OUTPUT_TOKENS: '100',
    SYSTEM_PROMPT: SYSTEM_PROMPT,
  });
  let repository: InMemoryChatRepository;
  let key: ChatKey;
  const chat = async () => (await repository.findChat(key))!;
  /** Stores `count` messages; returns the last. */
  const append = async (count: number) => {
    let last!: Message;
    for (let i = 0; i < count; i++) {
      const seq = (await chat()).messageCount + 1;
      const message = { content: `m${seq}`, status: 'completed' as const, model: null, usage: null, tokenCount: 1 };
      last = await repository.appendMessage(key, { ...message, role: seq % 2 ? 'user' : 'assistant', inReplyTo: null });
    }
    return last;
  };
  const messageAt = async (seq: number) => (await repository.listMessages(key, { limit: 1, afterSeq: seq - 1 }))[0];
  /** The context a turn answering message `seq` gets from `builder`. */
  const contextAt = async (builder: ContextBuilder, seq: number) => builder.build(await chat(), await messageAt(seq));
  /** What a builder that keeps nothing between turns gives. */
  const fromScratch = async (throughSeq: number) =>
    contextAt(new ContextBuilder(repository, tokens, config), throughSeq);

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

  it('should read nothing after the first turn when the turns remember their replies, and build what a full read does', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    const contexts = [];
    const fullReads = jest.spyOn(repository, 'listRecentMessages');
    const newerReads = jest.spyOn(repository, 'listMessages');
    for (let turn = 0; turn < 60; turn++) {
      // What a turn does: store the user message, build its context, store and remember the reply.
      const question = await append(1);
      contexts.push({ seq: question.seq, context: await builder.build(await chat(), question) });
      builder.remember(await chat(), await append(1));
    }
    expect(fullReads).toHaveBeenCalledTimes(1);
    expect(newerReads).not.toHaveBeenCalled();
    fullReads.mockRestore();
    newerReads.mockRestore();
    for (const { seq, context } of contexts) {
      expect(context).toEqual(await fromScratch(seq));
      expect(context.at(-1)).toEqual({ role: 'user', content: `m${seq}` });
    }
  });

  it('should read only the messages stored between turns that it was not told of', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    await contextAt(builder, (await append(5)).seq);
    const newerReads = jest.spyOn(repository, 'listMessages');

    const question = await append(4);
    const context = await builder.build(await chat(), question);

    expect(newerReads).toHaveBeenCalledTimes(1);
    expect(newerReads.mock.calls[0][1]).toEqual({ limit: 3, afterSeq: 5 });
    newerReads.mockRestore();
    expect(context).toEqual(await fromScratch(9));
  });

  it('should hand each turn the same frozen messages for the history they share, not copies', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    await append(9);
    const first = await contextAt(builder, 9);
    await append(2);
    const second = await contextAt(builder, 11);

    second.slice(0, first.length).forEach((message, i) => expect(message).toBe(first[i]));
    expect(second.every((message) => Object.isFrozen(message))).toBe(true);
  });

  it('should take in messages other instances stored, and answer an older message with the history it had', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    await append(9);
    await contextAt(builder, 9);
    await append(30); // written elsewhere: seq 10 to 39
    expect(await contextAt(builder, 39)).toEqual(await fromScratch(39));
    expect(await contextAt(builder, 21)).toEqual(await fromScratch(21));
    await append(200);
    expect(await contextAt(builder, 239)).toEqual(await fromScratch(239));
    expect(await contextAt(builder, 239)).toEqual(await fromScratch(239));
  });
});
