import { Chat, ChatKey } from '../../src/chats/chat';
import { InMemoryChatDigestStore } from '../../src/storage/in-memory/in-memory-chat-digest.store';
import { InMemoryChatRepository } from '../../src/storage/in-memory/in-memory-chat.repository';
import { ChatDigest } from '../../src/summaries/chat-digest';
import { ChatDigestPolicy, ChatDigests, DEFAULT_CHAT_DIGEST_POLICY } from '../../src/summaries/chat-digests';
import { TextAnalyzer } from '../../src/summaries/text-analyzer';
import { ANGRY_SUPPORT, FRIENDLY_TRIP, TECHNICAL_POOL } from '../fixtures/conversations';
import { userMessage } from '../storage/fixtures';
import { deferred } from '../support/deferred';

const CONVERSATION = [...FRIENDLY_TRIP, ...TECHNICAL_POOL, ...ANGRY_SUPPORT];
const POLICY: ChatDigestPolicy = {
  ...DEFAULT_CHAT_DIGEST_POLICY,
  quietMs: 1_000,
  quietBacklog: 20,
  eagerBacklog: 60,
  saveEvery: 10,
  slice: 4,
};
const analyzer = new TextAnalyzer();

/** The summary of every message of the chat, folded into a new digest in one go. */
async function summaryFromScratch(repository: InMemoryChatRepository, key: ChatKey) {
  const digest = new ChatDigest();
  for (const message of await repository.listMessages(key, { limit: 100_000 })) {
    digest.add(message, analyzer.analyze(message.content));
  }
  return digest.summary((await repository.findChat(key))!);
}

describe('ChatDigest snapshots', () => {
  it('should restore a digest that goes on exactly as the one it was taken from', async () => {
    const repository = new InMemoryChatRepository();
    const chat = await repository.createChat({
      tenantId: 't',
      title: 'Mixed',
      systemPrompt: null,
      model: 'm',
      metadata: {},
    });
    const key = { tenantId: 't', chatId: chat.id };
    for (const { role, content } of CONVERSATION) {
      await repository.appendMessage(key, userMessage(content, { role, tokenCount: 7 }));
    }
    const messages = await repository.listMessages(key, { limit: 1_000 });
    const half = Math.floor(messages.length / 2);
    const before = new ChatDigest();
    for (const message of messages.slice(0, half)) before.add(message, analyzer.analyze(message.content));

    const restored = ChatDigest.fromSnapshot(JSON.parse(JSON.stringify(before.toSnapshot())))!;
    expect(restored.size).toBe(before.size);
    for (const message of messages.slice(half)) restored.add(message, analyzer.analyze(message.content));

    const summary = restored.summary((await repository.findChat(key))!);
    expect(summary).toEqual(await summaryFromScratch(repository, key));
    expect(summary.highlights).toHaveLength(5);
    expect(summary.messageCount).toBe(CONVERSATION.length);
  });

  it('should not restore a snapshot of another version', () => {
    const snapshot = JSON.parse(new ChatDigest().toSnapshot());
    expect(ChatDigest.fromSnapshot(JSON.stringify({ ...snapshot, version: snapshot.version + 1 }))).toBeNull();
  });
});

describe('ChatDigests', () => {
  let repository: InMemoryChatRepository;
  let store: InMemoryChatDigestStore;
  let chat: Chat;
  let key: ChatKey;
  const instances: ChatDigests[] = [];

  /** A ChatDigests over the same storage, as after a restart, counting what it analyses. */
  function start(policy = POLICY) {
    const counting = new TextAnalyzer();
    const analyze = jest.spyOn(counting, 'analyze');
    const digests = new ChatDigests(repository, store, counting, policy);
    instances.push(digests);
    return { digests, analyzed: () => analyze.mock.calls.length };
  }

  /** Stores `turns` exchanges from the fixtures and tells `digests`, as each turn does. */
  async function exchange(digests: ChatDigests, turns: number, millisBetween = 0) {
    for (let turn = 0; turn < turns; turn++) {
      let seq = 0;
      for (const role of ['user', 'assistant'] as const) {
        const content = CONVERSATION[(chat.messageCount + seq) % CONVERSATION.length].content;
        ({ seq } = await repository.appendMessage(key, userMessage(content, { role, tokenCount: 5 })));
      }
      chat = (await repository.findChat(key))!;
      digests.noteStored(key, seq);
      if (millisBetween > 0) await jest.advanceTimersByTimeAsync(millisBetween);
    }
  }

  /** Another chat of the tenant. */
  async function newChatKey(): Promise<ChatKey> {
    const { id } = await repository.createChat({
      tenantId: 't',
      title: null,
      systemPrompt: null,
      model: 'm',
      metadata: {},
    });
    return { tenantId: 't', chatId: id };
  }
  const append = (chatKey: ChatKey, content: string) => repository.appendMessage(chatKey, userMessage(content));

  beforeEach(async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    repository = new InMemoryChatRepository();
    store = new InMemoryChatDigestStore(repository);
    chat = await repository.createChat({ tenantId: 't', title: null, systemPrompt: null, model: 'm', metadata: {} });
    key = { tenantId: 't', chatId: chat.id };
  });
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((digests) => digests.onModuleDestroy()));
    jest.useRealTimers();
  });

  it("should fold a quiet chat's backlog in the background, so its summary has nothing left to analyse", async () => {
    const { digests, analyzed } = start();
    await exchange(digests, 15);
    await digests.idle();
    expect(analyzed()).toBe(0);

    await jest.advanceTimersByTimeAsync(POLICY.quietMs);
    await digests.idle();
    expect(analyzed()).toBe(30);

    const digest = await digests.current(key);
    expect(analyzed()).toBe(30);
    expect(digest.summary(chat)).toEqual(await summaryFromScratch(repository, key));
  });

  it('should leave a small backlog to the next summary', async () => {
    const { digests, analyzed } = start();
    await exchange(digests, 9);
    await jest.advanceTimersByTimeAsync(POLICY.quietMs * 3);
    await digests.idle();
    expect(analyzed()).toBe(0);

    await digests.current(key);
    expect(analyzed()).toBe(18);
  });

  it('should not fold a busy chat until it is quiet, unless it falls far behind', async () => {
    const { digests, analyzed } = start();
    await exchange(digests, 25, POLICY.quietMs / 2);
    await digests.idle();
    expect(analyzed()).toBe(0);

    // The 30th turn puts it 60 messages behind: folded at once, busy or not.
    await exchange(digests, 5, POLICY.quietMs / 2);
    await digests.idle();
    expect(analyzed()).toBe(60);

    await jest.advanceTimersByTimeAsync(POLICY.quietMs);
    await digests.idle();
    expect(analyzed()).toBe(60);
  });

  it('should start from the stored digest after a restart, and only analyse what came since', async () => {
    const first = start();
    await exchange(first.digests, 12);
    await first.digests.current(key);
    expect(first.analyzed()).toBe(24);
    await first.digests.onModuleDestroy();

    await exchange(first.digests, 2);
    const second = start();
    const digest = await second.digests.current(key);
    expect(second.analyzed()).toBe(4);
    expect(digest.summary(chat)).toEqual(await summaryFromScratch(repository, key));
  });

  it('should rebuild a stored digest of another version or an unreadable one, and store it again', async () => {
    await exchange(start().digests, 6);
    for (const snapshot of [JSON.stringify({ version: 0 }), 'not json']) {
      await store.save(key, { lastSeq: 12, snapshot });
      const rebuilt = start();
      expect((await rebuilt.digests.current(key)).summary(chat)).toEqual(await summaryFromScratch(repository, key));
      expect(rebuilt.analyzed()).toBe(12);

      const next = start();
      await next.digests.current(key);
      expect(next.analyzed()).toBe(0);
    }
  });

  it('should answer from the digest when storing it fails, and store it on a later fold', async () => {
    const { digests, analyzed } = start();
    await exchange(digests, 6);
    const save = jest.spyOn(store, 'save').mockRejectedValueOnce(new Error('database is locked'));

    expect((await digests.current(key)).summary(chat)).toEqual(await summaryFromScratch(repository, key));
    expect(await store.load(key)).toBeNull();

    await exchange(digests, 1);
    await digests.current(key);
    expect(analyzed()).toBe(14);
    expect(save).toHaveBeenCalledTimes(2);
    expect((await store.load(key))?.lastSeq).toBe(14);
  });

  it('should summarize a chat the same whether or not it was summarized before, and after a restart', async () => {
    // The first part has more candidate sentences than the pool keeps, and the weakest of them say
    // what the second part makes the chat's most frequent words.
    const nouns = ['server', 'database', 'cache', 'queue', 'worker', 'request', 'thread', 'memory', 'disk', 'network'];
    const strong = nouns.flatMap((a, i) =>
      nouns
        .slice(i + 1)
        .flatMap((b) => nouns.filter((c) => c !== a && c !== b).map((c) => `The ${a} uses the ${b} and the ${c}.`)),
    );
    const weak = [
      'Zebras admire purple volcanoes.',
      ...[2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => `Otters juggle ${n} lanterns.`),
    ];
    const firstPart = [...strong.slice(0, 250), ...weak];
    const secondPart = 'Zebras and volcanoes. '.repeat(400) + 'Admire purple. '.repeat(400);
    const [summarizedBetween, summarizedOnce] = [await newChatKey(), await newChatKey()];
    const summaryOf = async (digests: ChatDigests, chatKey: ChatKey) => {
      const { highlights, topics, sentiment, messageCount } = (await digests.current(chatKey)).summary(
        (await repository.findChat(chatKey))!,
      );
      return { highlights: highlights.map(({ text }) => text), topics, sentiment, messageCount };
    };

    const { digests } = start();
    for (const chatKey of [summarizedBetween, summarizedOnce]) {
      // 26 sentences a message: the digest is stored after the first part (POLICY.saveEvery).
      for (let i = 0; i < firstPart.length; i += 26) await append(chatKey, firstPart.slice(i, i + 26).join(' '));
    }
    await summaryOf(digests, summarizedBetween);
    for (const chatKey of [summarizedBetween, summarizedOnce]) await append(chatKey, secondPart);

    const once = await summaryOf(digests, summarizedOnce);
    expect(once.highlights).toContain('Zebras admire purple volcanoes.');
    expect(await summaryOf(digests, summarizedBetween)).toEqual(once);
    expect(await summaryOf(start().digests, summarizedBetween)).toEqual(once);
  });

  it('should keep digests in memory up to the bytes they hold, and summarize evicted ones as well', async () => {
    // Long sentences, as imported replies have, of the fixtures' words in an order of their own.
    const words = [...new Set(CONVERSATION.flatMap(({ content }) => content.match(/[A-Za-z]+/g)!))];
    let seed = 1;
    const sentence = () =>
      `${Array.from({ length: 300 }, () => words[(seed = (seed * 48_271) % 2_147_483_647) % words.length]).join(' ')}.`;
    const message = (sentences: number) => Array.from({ length: sentences }, sentence).join(' ');
    const liveBytes = 400_000;
    const { digests, analyzed } = start({ ...POLICY, liveBytes });
    /** Checks the chat's summary, and says how many messages it analysed. */
    async function analysedBySummary(chatKey: ChatKey): Promise<number> {
      const before = analyzed();
      const summary = (await digests.current(chatKey)).summary((await repository.findChat(chatKey))!);
      expect(summary).toEqual(await summaryFromScratch(repository, chatKey));
      return analyzed() - before;
    }

    // Each digest holds about 100 KB, most of it its sentences.
    const chats: ChatKey[] = [];
    for (let i = 0; i < 10; i++) {
      chats.push(await newChatKey());
      for (let m = 0; m < 4; m++) await append(chats[i], message(1));
      expect(await analysedBySummary(chats[i])).toBe(4);
      expect(digests.liveBytes).toBeGreaterThan(0);
      expect(digests.liveBytes).toBeLessThanOrEqual(liveBytes);
    }
    // The latest are kept; the first was let go, and its messages are analysed again.
    expect(await analysedBySummary(chats[9])).toBe(0);
    expect(await analysedBySummary(chats[0])).toBe(4);

    // A digest larger than all the memory allowed is used, and let go.
    const long = await newChatKey();
    for (let m = 0; m < 4; m++) await append(long, message(12));
    expect(await analysedBySummary(long)).toBe(4);
    expect(await analysedBySummary(long)).toBe(4);
    expect(digests.liveBytes).toBeLessThanOrEqual(liveBytes);
  });

  it("should let a deleted chat's digest go, even from a fold that was running", async () => {
    const { digests } = start();
    await exchange(digests, 3);
    await digests.current(key);
    expect(digests.liveBytes).toBeGreaterThan(0);
    await digests.forget(key);
    expect(digests.liveBytes).toBe(0);

    // A summary reads the chat's messages, the chat is deleted, then the fold ends.
    await exchange(digests, 3);
    const [pageRead, foldGoesOn] = [deferred(), deferred()];
    const listMessages = repository.listMessages.bind(repository);
    jest.spyOn(repository, 'listMessages').mockImplementationOnce(async (...args) => {
      const page = await listMessages(...args);
      pageRead.resolve();
      await foldGoesOn.promise;
      return page;
    });
    const folding = digests.current(key);
    await pageRead.promise;
    await repository.deleteChat(key);
    const forgetting = digests.forget(key);
    foldGoesOn.resolve();
    expect((await folding).lastSeq).toBe(12);
    await forgetting;
    expect(digests.liveBytes).toBe(0);
  });

  it('should fold nothing in the background once shut down', async () => {
    const { digests, analyzed } = start();
    await digests.onModuleDestroy();
    await exchange(digests, 35);
    await jest.advanceTimersByTimeAsync(POLICY.quietMs);
    await digests.idle();
    expect(analyzed()).toBe(0);
  });
});
