import { validate as isUuid, version as uuidVersion } from 'uuid';
import { ChatNotFoundError } from '../../src/chats/chat-errors';
import { ChatLock, ChatRepository } from '../../src/chats/chat.repository';
import { deferred } from '../support/deferred';
import { key, newChat, TENANT, userMessage } from './fixtures';

/** A repository over empty storage, and how to dispose of it. */
export interface RepositoryUnderTest {
  repository: ChatRepository;
  close(): Promise<void>;
}

/**
 * What every ChatRepository does, whatever stores it. Each test gets a repository over empty
 * storage from `open`; the same tests run unchanged against every implementation.
 */
export function describeChatRepositoryContract(name: string, open: () => Promise<RepositoryUnderTest>): void {
  describe(name, () => {
    let subject: RepositoryUnderTest;
    let repository: ChatRepository;

    beforeEach(async () => {
      subject = await open();
      repository = subject.repository;
    });
    afterEach(() => subject.close());

    const fill = async (chatId: string, count: number) => {
      for (let i = 1; i <= count; i++) await repository.appendMessage(key(chatId), userMessage(`message ${i}`));
    };

    describe('chats', () => {
      it('should create a chat with a UUIDv7 id, no messages and equal creation and update times', async () => {
        const chat = await repository.createChat(
          newChat({ title: 'Lisbon', systemPrompt: 'Be brief.', metadata: { plan: 'pro', ключ: 'значение 🚀' } }),
        );
        expect(isUuid(chat.id) && uuidVersion(chat.id)).toBe(7);
        expect(chat).toEqual({
          id: chat.id,
          tenantId: TENANT,
          title: 'Lisbon',
          systemPrompt: 'Be brief.',
          model: 'test-model',
          metadata: { plan: 'pro', ключ: 'значение 🚀' },
          messageCount: 0,
          createdAt: expect.any(Date),
          updatedAt: chat.createdAt,
          lastMessageAt: null,
        });
        expect(await repository.findChat(key(chat.id))).toEqual(chat);
      });

      it('should find nothing for an id that names no chat', async () => {
        await repository.createChat(newChat());
        expect(await repository.findChat(key('0190a000-0000-7000-8000-000000000000'))).toBeNull();
      });

      it('should list chats newest first and page by the last id seen', async () => {
        const created = [];
        for (let i = 0; i < 7; i++) created.push(await repository.createChat(newChat({ title: `chat ${i}` })));
        const newestFirst = [...created].reverse().map((c) => c.id);

        expect((await repository.listChats(TENANT, { limit: 100 })).map((c) => c.id)).toEqual(newestFirst);
        const seen: string[] = [];
        let beforeId: string | undefined;
        for (;;) {
          const page = await repository.listChats(TENANT, { limit: 3, beforeId });
          seen.push(...page.map((c) => c.id));
          if (page.length < 3) break;
          beforeId = page[page.length - 1].id;
        }
        expect(seen).toEqual(newestFirst);
      });

      it('should apply only the given changes and move updatedAt', async () => {
        const chat = await repository.createChat(
          newChat({ title: 'Old', systemPrompt: 'Keep me', metadata: { a: '1' } }),
        );
        const updated = await repository.updateChat(key(chat.id), { title: null, metadata: { b: '2' } });
        expect(updated).toEqual({
          ...chat,
          title: null,
          metadata: { b: '2' },
          updatedAt: expect.any(Date),
        });
        expect(updated!.updatedAt.getTime()).toBeGreaterThanOrEqual(chat.updatedAt.getTime());
        expect(await repository.findChat(key(chat.id))).toEqual(updated);
        expect(await repository.updateChat(key(chat.id), { systemPrompt: 'New' })).toMatchObject({
          title: null,
          systemPrompt: 'New',
          metadata: { b: '2' },
        });
      });

      it('should answer null when updating a chat that does not exist', async () => {
        expect(await repository.updateChat(key('0190a000-0000-7000-8000-000000000000'), { title: 'x' })).toBeNull();
      });

      it('should give an untitled chat a title, but never replace one', async () => {
        const untitled = await repository.createChat(newChat());
        const titled = await repository.createChat(newChat({ title: 'Mine' }));

        expect(await repository.setTitleIfUntitled(key(untitled.id), 'Auto')).toMatchObject({
          id: untitled.id,
          title: 'Auto',
        });
        expect(await repository.setTitleIfUntitled(key(untitled.id), 'Again')).toBeNull();
        expect(await repository.setTitleIfUntitled(key(titled.id), 'Auto')).toBeNull();
        expect(await repository.setTitleIfUntitled(key('0190a000-0000-7000-8000-000000000000'), 'Auto')).toBeNull();
        expect((await repository.findChat(key(untitled.id)))!.title).toBe('Auto');
        expect((await repository.findChat(key(titled.id)))!.title).toBe('Mine');
      });

      it('should delete a chat with its messages and leave other chats alone', async () => {
        const doomed = await repository.createChat(newChat());
        const kept = await repository.createChat(newChat());
        await fill(doomed.id, 3);
        await fill(kept.id, 2);

        expect(await repository.deleteChat(key(doomed.id))).toBe(true);
        expect(await repository.findChat(key(doomed.id))).toBeNull();
        expect(await repository.listMessages(key(doomed.id), { limit: 10 })).toEqual([]);
        expect(await repository.listRecentMessages(key(doomed.id), { limit: 10 })).toEqual([]);
        expect(await repository.deleteChat(key(doomed.id))).toBe(false);
        await expect(repository.appendMessage(key(doomed.id), userMessage('late'))).rejects.toBeInstanceOf(
          ChatNotFoundError,
        );
        expect((await repository.listChats(TENANT, { limit: 10 })).map((c) => c.id)).toEqual([kept.id]);
        expect((await repository.listMessages(key(kept.id), { limit: 10 })).map((m) => m.seq)).toEqual([1, 2]);
      });
    });

    describe('tenants', () => {
      const OTHER = 'tenant-b';

      it("should never find, change or list another tenant's chat", async () => {
        const mine = await repository.createChat(newChat({ title: 'Mine' }));
        const theirs = await repository.createChat(newChat({ tenantId: OTHER, title: 'Theirs' }));
        await fill(mine.id, 2);

        expect(theirs.tenantId).toBe(OTHER);
        expect((await repository.listChats(TENANT, { limit: 10 })).map((c) => c.id)).toEqual([mine.id]);
        expect((await repository.listChats(OTHER, { limit: 10 })).map((c) => c.id)).toEqual([theirs.id]);
        expect(await repository.findChat(key(mine.id, OTHER))).toBeNull();
        expect(await repository.updateChat(key(mine.id, OTHER), { title: 'Stolen' })).toBeNull();
        expect(await repository.setTitleIfUntitled(key(theirs.id), 'Stolen')).toBeNull();
        expect(await repository.listMessages(key(mine.id, OTHER), { limit: 10 })).toEqual([]);
        expect(await repository.listRecentMessages(key(mine.id, OTHER), { limit: 10 })).toEqual([]);
        await expect(repository.appendMessage(key(mine.id, OTHER), userMessage('intrusion'))).rejects.toBeInstanceOf(
          ChatNotFoundError,
        );
        expect(await repository.deleteChat(key(mine.id, OTHER))).toBe(false);

        expect(await repository.findChat(key(mine.id))).toMatchObject({ title: 'Mine', messageCount: 2 });
        expect((await repository.listMessages(key(mine.id), { limit: 10 })).map((m) => m.content)).toEqual([
          'message 1',
          'message 2',
        ]);
        expect(await repository.findChat(key(theirs.id, OTHER))).toMatchObject({ title: 'Theirs' });
      });

      it("should page a tenant's chats without ever crossing into another's", async () => {
        const ours: string[] = [];
        for (let i = 0; i < 5; i++) {
          ours.push((await repository.createChat(newChat())).id);
          await repository.createChat(newChat({ tenantId: OTHER }));
        }
        const seen: string[] = [];
        let beforeId: string | undefined;
        for (;;) {
          const page = await repository.listChats(TENANT, { limit: 2, beforeId });
          seen.push(...page.map((c) => c.id));
          if (page.length < 2) break;
          beforeId = page[page.length - 1].id;
        }
        expect(seen).toEqual([...ours].reverse());
      });
    });

    describe('messages', () => {
      it('should store every field of a message and number it after the last', async () => {
        const chat = await repository.createChat(newChat());
        const question = await repository.appendMessage(
          key(chat.id),
          userMessage('Héllo — 你好 👋', { tokenCount: 7 }),
        );
        const answer = await repository.appendMessage(key(chat.id), {
          role: 'assistant',
          content: 'Partial rep',
          status: 'incomplete',
          inReplyTo: question.id,
          model: 'gpt-test',
          usage: { promptTokens: 12, completionTokens: 5 },
          tokenCount: 3,
        });

        expect(isUuid(question.id) && uuidVersion(question.id)).toBe(7);
        expect(question).toEqual({
          id: question.id,
          chatId: chat.id,
          seq: 1,
          role: 'user',
          content: 'Héllo — 你好 👋',
          status: 'completed',
          inReplyTo: null,
          model: null,
          usage: null,
          tokenCount: 7,
          createdAt: expect.any(Date),
        });
        expect(answer).toEqual({
          id: answer.id,
          chatId: chat.id,
          seq: 2,
          role: 'assistant',
          content: 'Partial rep',
          status: 'incomplete',
          inReplyTo: question.id,
          model: 'gpt-test',
          usage: { promptTokens: 12, completionTokens: 5 },
          tokenCount: 3,
          createdAt: expect.any(Date),
        });
        expect(await repository.listMessages(key(chat.id), { limit: 10 })).toEqual([question, answer]);
      });

      it("should keep the chat's count and last message time", async () => {
        const chat = await repository.createChat(newChat());
        await fill(chat.id, 2);
        const last = await repository.appendMessage(key(chat.id), userMessage('third'));
        expect(await repository.findChat(key(chat.id))).toEqual({
          ...chat,
          messageCount: 3,
          updatedAt: last.createdAt,
          lastMessageAt: last.createdAt,
        });
      });

      it('should refuse a message for a chat that does not exist', async () => {
        await expect(
          repository.appendMessage(key('0190a000-0000-7000-8000-000000000000'), userMessage('hello')),
        ).rejects.toBeInstanceOf(ChatNotFoundError);
      });

      it('should number each chat on its own', async () => {
        const a = await repository.createChat(newChat());
        const b = await repository.createChat(newChat());
        await repository.appendMessage(key(a.id), userMessage('a1'));
        await repository.appendMessage(key(b.id), userMessage('b1'));
        await repository.appendMessage(key(a.id), userMessage('a2'));
        expect((await repository.listMessages(key(a.id), { limit: 10 })).map((m) => [m.seq, m.content])).toEqual([
          [1, 'a1'],
          [2, 'a2'],
        ]);
        expect((await repository.listMessages(key(b.id), { limit: 10 })).map((m) => [m.seq, m.content])).toEqual([
          [1, 'b1'],
        ]);
      });

      it('should give simultaneous appends distinct positions with no gaps', async () => {
        const chat = await repository.createChat(newChat());
        const stored = await Promise.all(
          Array.from({ length: 20 }, (_, i) => repository.appendMessage(key(chat.id), userMessage(`m${i}`))),
        );
        expect(stored.map((m) => m.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect((await repository.findChat(key(chat.id)))!.messageCount).toBe(20);
      });

      it('should page messages by seq, oldest first, after the last seq seen', async () => {
        const chat = await repository.createChat(newChat());
        await fill(chat.id, 10);
        const seqs = async (afterSeq?: number) =>
          (await repository.listMessages(key(chat.id), { limit: 4, afterSeq })).map((m) => m.seq);
        expect(await seqs()).toEqual([1, 2, 3, 4]);
        expect(await seqs(4)).toEqual([5, 6, 7, 8]);
        expect(await seqs(8)).toEqual([9, 10]);
        expect(await seqs(10)).toEqual([]);
      });

      it('should list recent messages newest first, before a seq', async () => {
        const chat = await repository.createChat(newChat());
        await fill(chat.id, 10);
        const seqs = async (beforeSeq?: number) =>
          (await repository.listRecentMessages(key(chat.id), { limit: 4, beforeSeq })).map((m) => m.seq);
        expect(await seqs()).toEqual([10, 9, 8, 7]);
        expect(await seqs(7)).toEqual([6, 5, 4, 3]);
        expect(await seqs(3)).toEqual([2, 1]);
        expect(await seqs(1)).toEqual([]);
      });
    });

    describe('withChatLock', () => {
      it('should run work for one chat one at a time, first come first served', async () => {
        const chat = await repository.createChat(newChat());
        const gate = deferred();
        const order: number[] = [];
        let running = 0;
        let maxRunning = 0;
        const work = (i: number) => async (lock: ChatLock) => {
          running += 1;
          maxRunning = Math.max(maxRunning, running);
          if (i === 0) await gate.promise;
          await repository.appendMessage(key(chat.id), userMessage(`turn ${i}`), lock);
          order.push(i);
          running -= 1;
          return i;
        };
        const first = repository.withChatLock(chat.id, work(0));
        const rest = Array.from({ length: 5 }, (_, i) => repository.withChatLock(chat.id, work(i + 1)));
        gate.resolve();

        expect(await Promise.all([first, ...rest])).toEqual([0, 1, 2, 3, 4, 5]);
        expect(order).toEqual([0, 1, 2, 3, 4, 5]);
        expect(maxRunning).toBe(1);
        expect((await repository.listMessages(key(chat.id), { limit: 10 })).map((m) => m.content)).toEqual(
          order.map((i) => `turn ${i}`),
        );
      });

      it('should not make different chats wait for each other', async () => {
        const [a, b] = [await repository.createChat(newChat()), await repository.createChat(newChat())];
        const gate = deferred();
        const holdingA = repository.withChatLock(a.id, () => gate.promise);
        await expect(repository.withChatLock(b.id, async () => 'b ran')).resolves.toBe('b ran');
        gate.resolve();
        await holdingA;
      });

      it('should pass on a failure and free the chat for the next caller', async () => {
        const chat = await repository.createChat(newChat());
        await expect(
          repository.withChatLock(chat.id, async () => {
            throw new Error('work failed');
          }),
        ).rejects.toThrow('work failed');
        await expect(repository.withChatLock(chat.id, async () => 'next')).resolves.toBe('next');
      });
    });
  });
}
