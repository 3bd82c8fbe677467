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
  /** Room for the system prompt and about 60 one-token messages. */
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
    const newerReads = jest.spyOn(repository, 'listBranch');
    // 200 turns: the window sheds the messages its budget no longer needs several times over, and
    // one that shed a message it still needed would have to read the history again.
    for (let turn = 0; turn < 200; turn++) {
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
    const newerReads = jest.spyOn(repository, 'listBranch');

    const question = await append(4);
    const context = await builder.build(await chat(), question);

    expect(newerReads).toHaveBeenCalledTimes(1);
    expect(newerReads.mock.calls[0][1]).toEqual({ throughId: question.id, limit: 4, afterSeq: 5 });
    newerReads.mockRestore();
    expect(context).toEqual(await fromScratch(9));
  });

  it('should keep nothing of a chat it was told to forget (a deleted one)', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    await contextAt(builder, (await append(5)).seq);
    const fullReads = jest.spyOn(repository, 'listRecentMessages');

    builder.forget(key.chatId);
    await contextAt(builder, 5);

    expect(fullReads).toHaveBeenCalledTimes(1);
    fullReads.mockRestore();
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

  /**
   * What a turn answering `answered` must send, worked out from every stored message: the system
   * prompt, then the newest messages of the path from the root to `answered` that fit the budget.
   */
  const expectedContext = async (answered: Message) => {
    const all = await repository.listMessages(key, { limit: 100_000 });
    const byId = new Map(all.map((m) => [m.id, m]));
    const path: Message[] = [];
    for (let at: Message | undefined = answered; at; at = at.parentId === null ? undefined : byId.get(at.parentId)) {
      path.push(at);
    }
    // The budget of `config`, less the system prompt.
    let remaining = 40 * MESSAGE_COST + 100 - (tokens.count(SYSTEM_PROMPT) + TokenCounter.MESSAGE_OVERHEAD);
    const fitting = [];
    for (const message of path) {
      if (remaining < MESSAGE_COST) break;
      remaining -= MESSAGE_COST;
      fitting.push({ role: message.role, content: message.content });
    }
    return [{ role: 'system', content: SYSTEM_PROMPT }, ...fitting.reverse()];
  };

  it('should give every turn its own branch, over random sends, edits, regenerations and switches', async () => {
    const builder = new ContextBuilder(repository, tokens, config);
    // mulberry32: the same steps on every run.
    let seed = 0x5eed;
    const random = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
    const store = (role: 'user' | 'assistant', parentId?: string | null) =>
      repository.appendMessage(key, {
        role,
        content: `${role} ${Math.floor(random() * 1e6).toString(36)}`,
        status: 'completed',
        inReplyTo: null,
        parentId,
        model: null,
        usage: null,
        tokenCount: 1,
      });
    const kinds = { send: 0, edit: 0, regenerate: 0, switch: 0, elsewhere: 0 };
    for (let step = 0; step < 300; step++) {
      const all = await repository.listMessages(key, { limit: 100_000 });
      const users = all.filter((m) => m.role === 'user');
      const roll = random();
      let answered: Message;
      if (all.length === 0 || roll < 0.4) {
        kinds.send++;
        answered = await store('user');
      } else if (roll < 0.55) {
        kinds.edit++;
        answered = await store('user', pick(users).parentId);
      } else if (roll < 0.7) {
        kinds.regenerate++;
        answered = pick(users);
      } else if (roll < 0.85) {
        kinds.switch++;
        await repository.switchBranch(key, pick(all).id);
        continue;
      } else {
        // Another instance runs a turn: this builder is told of neither message.
        kinds.elsewhere++;
        await store('user');
        await store('assistant');
        continue;
      }
      const context = await builder.build(await chat(), answered);
      expect(context).toEqual(await expectedContext(answered));
      builder.remember(await chat(), await store('assistant', answered.id));
    }
    expect(Object.values(kinds).every((count) => count > 20)).toBe(true);
  });
});
