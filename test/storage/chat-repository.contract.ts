import { validate as isUuid, v7 as uuidv7, version as uuidVersion } from 'uuid';
import { ChatNotFoundError, UnknownMessageIdError } from '../../src/chats/chat-errors';
import { ChatLock, ChatRepository } from '../../src/chats/chat.repository';
import { Message } from '../../src/chats/message';
import { deferred } from '../support/deferred';
import { readAllPages } from '../support/pages';
import { importedMessages, key, newChat, TENANT, userMessage } from './fixtures';

/** A stored message's time: ISO 8601 in UTC with milliseconds, as the API shows it. */
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

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

    /** Appends `count` messages that follow the current one; returns the last. */
    const fill = async (chatId: string, count: number) => {
      let last!: Message;
      for (let i = 1; i <= count; i++) last = await repository.appendMessage(key(chatId), userMessage(`message ${i}`));
      return last;
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
          currentMessageId: null,
        });
        expect(await repository.findChat(key(chat.id))).toEqual(chat);
      });

      it('should store a chat under the id its caller chose, and refuse a second chat under it', async () => {
        const id = uuidv7();
        const created = await repository.createChat(newChat({ id, title: 'First' }));
        expect(created.id).toBe(id);
        // Any rejection: a driver's error may come from another realm than the test's (jest's
        // contexts share a native module), which `toThrow` does not take for an Error.
        await expect(repository.createChat(newChat({ id, title: 'Second' }))).rejects.toBeDefined();
        await expect(
          repository.importChat({
            chat: newChat({ id, title: 'Imported' }),
            createdAt: new Date(),
            messages: importedMessages([null]),
            currentMessageId: null,
          }),
        ).rejects.toBeDefined();
        expect(await repository.findChat(key(id))).toEqual(created);
        expect(await repository.listChats(TENANT, { limit: 10 })).toEqual([created]);
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
        const seen = await readAllPages(
          'listChats',
          { size: 3, maxPages: 10 },
          (beforeId?: string) => repository.listChats(TENANT, { limit: 3, beforeId }),
          (chat) => chat.id,
        );
        expect(seen.map((c) => c.id)).toEqual(newestFirst);
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
        const doomedLast = await fill(doomed.id, 3);
        await fill(kept.id, 2);

        expect(await repository.deleteChat(key(doomed.id))).toBe(true);
        expect(await repository.findChat(key(doomed.id))).toBeNull();
        expect(await repository.listMessages(key(doomed.id), { limit: 10 })).toEqual([]);
        expect(await repository.listRecentMessages(key(doomed.id), { throughId: doomedLast.id, limit: 10 })).toEqual(
          [],
        );
        expect(await repository.findMessage(key(doomed.id), doomedLast.id)).toBeNull();
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
        const mineLast = await fill(mine.id, 2);

        expect(theirs.tenantId).toBe(OTHER);
        expect((await repository.listChats(TENANT, { limit: 10 })).map((c) => c.id)).toEqual([mine.id]);
        expect((await repository.listChats(OTHER, { limit: 10 })).map((c) => c.id)).toEqual([theirs.id]);
        expect(await repository.findChat(key(mine.id, OTHER))).toBeNull();
        expect(await repository.updateChat(key(mine.id, OTHER), { title: 'Stolen' })).toBeNull();
        expect(await repository.setTitleIfUntitled(key(theirs.id), 'Stolen')).toBeNull();
        expect(await repository.listMessages(key(mine.id, OTHER), { limit: 10 })).toEqual([]);
        expect(await repository.listRecentMessages(key(mine.id, OTHER), { throughId: mineLast.id, limit: 10 })).toEqual(
          [],
        );
        expect(await repository.listBranch(key(mine.id, OTHER), { throughId: mineLast.id, limit: 10 })).toEqual([]);
        expect(await repository.findMessage(key(mine.id, OTHER), mineLast.id)).toBeNull();
        expect(await repository.switchBranch(key(mine.id, OTHER), mineLast.id)).toBeNull();
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
        const seen = await readAllPages(
          'listChats',
          { size: 2, maxPages: 10 },
          (beforeId?: string) => repository.listChats(TENANT, { limit: 2, beforeId }),
          (chat) => chat.id,
        );
        expect(seen.map((c) => c.id)).toEqual([...ours].reverse());
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
          parentId: null,
          model: null,
          usage: null,
          tokenCount: 7,
          createdAt: expect.stringMatching(ISO_TIME),
        });
        expect(answer).toEqual({
          id: answer.id,
          chatId: chat.id,
          seq: 2,
          role: 'assistant',
          content: 'Partial rep',
          status: 'incomplete',
          inReplyTo: question.id,
          parentId: question.id,
          model: 'gpt-test',
          usage: { promptTokens: 12, completionTokens: 5 },
          tokenCount: 3,
          createdAt: expect.stringMatching(ISO_TIME),
        });
        expect(await repository.listMessages(key(chat.id), { limit: 10 })).toEqual([question, answer]);
      });

      it('should keep the failure of a reply stored before its turn failed, and none on other messages', async () => {
        const chat = await repository.createChat(newChat());
        const question = await repository.appendMessage(key(chat.id), userMessage('Tell me'));
        const failure = { kind: 'upstream-failed', code: 'llm-failed', title: 'Failed', detail: 'It broke.' } as const;
        const partial = await repository.appendMessage(
          key(chat.id),
          userMessage('Half', { role: 'assistant', status: 'incomplete', inReplyTo: question.id, failure }),
        );

        expect(partial.failure).toEqual(failure);
        expect(await repository.findMessage(key(chat.id), partial.id)).toEqual(partial);
        expect(await repository.listMessages(key(chat.id), { limit: 10 })).toEqual([question, partial]);
        expect('failure' in question).toBe(false);
      });

      it("should keep the chat's count and last message time", async () => {
        const chat = await repository.createChat(newChat());
        await fill(chat.id, 2);
        const last = await repository.appendMessage(key(chat.id), userMessage('third'));
        expect(await repository.findChat(key(chat.id))).toEqual({
          ...chat,
          messageCount: 3,
          updatedAt: new Date(last.createdAt),
          lastMessageAt: new Date(last.createdAt),
          currentMessageId: last.id,
        });
      });

      it('should answer an append under the lock with the chat as it left it, settings changed before included', async () => {
        const chat = await repository.createChat(newChat({ title: 'Trip', systemPrompt: 'old', metadata: { a: '1' } }));
        const first = await repository.appendMessage(key(chat.id), userMessage('first'));
        await repository.updateChat(key(chat.id), { systemPrompt: 'new', metadata: { b: '2' } });
        // Each kind of parent: the current message, a named one, none (a new root).
        let current = first.id;
        for (const parentId of [undefined, first.id, null]) {
          await repository.withChatLock(chat.id, async (lock) => {
            const { message, chat: after } = await repository.appendMessageWithChat(
              key(chat.id),
              userMessage(`after ${parentId}`, { parentId }),
              lock,
            );
            expect(message).toEqual(await repository.findMessage(key(chat.id), message.id));
            expect(message.parentId).toBe(parentId === undefined ? current : parentId);
            expect(after).toEqual(await repository.findChat(key(chat.id)));
            expect(after).toEqual({
              ...chat,
              systemPrompt: 'new',
              metadata: { b: '2' },
              messageCount: message.seq,
              updatedAt: new Date(message.createdAt),
              lastMessageAt: new Date(message.createdAt),
              currentMessageId: message.id,
            });
            current = message.id;
          });
        }
        await repository.withChatLock(chat.id, async (lock) => {
          await expect(
            repository.appendMessageWithChat(key(chat.id, 'tenant-b'), userMessage('intrusion'), lock),
          ).rejects.toBeInstanceOf(ChatNotFoundError);
          await expect(
            repository.appendMessageWithChat(
              key(chat.id),
              userMessage('orphan', { parentId: '0190a000-0000-7000-8000-000000000000' }),
              lock,
            ),
          ).rejects.toBeInstanceOf(UnknownMessageIdError);
        });
        expect((await repository.findChat(key(chat.id)))!.messageCount).toBe(4);
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

      it("should list recent messages newest first, through a message, and on from the last one's parent", async () => {
        const chat = await repository.createChat(newChat());
        await fill(chat.id, 10);
        const all = await repository.listMessages(key(chat.id), { limit: 10 });
        const seqs = async (throughId: string) =>
          (await repository.listRecentMessages(key(chat.id), { throughId, limit: 4 })).map((m) => m.seq);
        expect(await seqs(all[9].id)).toEqual([10, 9, 8, 7]);
        expect(await seqs(all[5].id)).toEqual([6, 5, 4, 3]);
        expect(await seqs(all[1].id)).toEqual([2, 1]);
        expect(await repository.listRecentMessages(key(chat.id), { throughId: all[9].id, limit: 1 })).toMatchObject([
          {
            id: all[9].id,
            parentId: all[8].id,
            seq: 10,
            role: 'user',
            content: 'message 10',
            tokenCount: all[9].tokenCount,
          },
        ]);
      });
    });

    describe('branches', () => {
      /** Appends after `parent` (undefined: the current message); returns the message. */
      const say = (chatId: string, content: string, parentId?: string | null) =>
        repository.appendMessage(key(chatId), userMessage(content, { parentId }));
      const contents = (messages: { content: string }[]) => messages.map((m) => m.content);
      const branchOf = async (chatId: string, throughId: string) =>
        contents(await repository.listBranch(key(chatId), { throughId, limit: 1000 }));
      const recentOf = async (chatId: string, throughId: string, limit = 1000) =>
        contents(await repository.listRecentMessages(key(chatId), { throughId, limit }));

      it("should chain appends that follow the current message, each the next one's parent", async () => {
        const chat = await repository.createChat(newChat());
        const a = await say(chat.id, 'a');
        const b = await say(chat.id, 'b');
        const c = await say(chat.id, 'c');
        expect([a.parentId, b.parentId, c.parentId]).toEqual([null, a.id, b.id]);
        expect((await repository.findChat(key(chat.id)))!.currentMessageId).toBe(c.id);
        expect(await repository.findMessage(key(chat.id), b.id)).toEqual(b);
      });

      it('should keep seq contiguous across branches, and read each branch without its siblings', async () => {
        const chat = await repository.createChat(newChat());
        const q1 = await say(chat.id, 'q1');
        const a1 = await say(chat.id, 'a1');
        const q2 = await say(chat.id, 'q2');
        const a2 = await say(chat.id, 'a2');
        const a1b = await say(chat.id, 'a1b', q1.id); // a second reply to q1
        const q2b = await say(chat.id, 'q2b'); // follows a1b, the current message
        const q1b = await say(chat.id, 'q1b', null); // an edit of the first message
        const q2c = await say(chat.id, 'q2c', a1.id); // an edit of q2

        expect([a1b, q2b, q1b, q2c].map((m) => m.seq)).toEqual([5, 6, 7, 8]);
        expect([a1b.parentId, q2b.parentId, q1b.parentId, q2c.parentId]).toEqual([q1.id, a1b.id, null, a1.id]);
        expect(await branchOf(chat.id, a2.id)).toEqual(['q1', 'a1', 'q2', 'a2']);
        expect(await branchOf(chat.id, q2b.id)).toEqual(['q1', 'a1b', 'q2b']);
        expect(await branchOf(chat.id, q1b.id)).toEqual(['q1b']);
        expect(await branchOf(chat.id, q2c.id)).toEqual(['q1', 'a1', 'q2c']);
        expect(await branchOf(chat.id, q2.id)).toEqual(['q1', 'a1', 'q2']);
        expect(await recentOf(chat.id, q2c.id)).toEqual(['q2c', 'a1', 'q1']);
        expect(await recentOf(chat.id, q2b.id, 2)).toEqual(['q2b', 'a1b']);
        expect(await recentOf(chat.id, a2.id)).toEqual(['a2', 'q2', 'a1', 'q1']);
        expect((await repository.listMessages(key(chat.id), { limit: 100 })).map((m) => m.seq)).toEqual([
          1, 2, 3, 4, 5, 6, 7, 8,
        ]);
        expect((await repository.findChat(key(chat.id)))!).toMatchObject({ messageCount: 8, currentMessageId: q2c.id });
      });

      it('should page a branch root first after the last seq seen, across the lines it runs through', async () => {
        const chat = await repository.createChat(newChat());
        const line = [];
        for (let i = 1; i <= 6; i++) line.push(await say(chat.id, `m${i}`));
        await say(chat.id, 'x4', line[2].id); // a branch off m3
        let last = await say(chat.id, 'n4', line[2].id);
        for (let i = 5; i <= 7; i++) last = await say(chat.id, `n${i}`);
        await say(chat.id, 'y', line[0].id);
        const seen = await readAllPages(
          'listBranch',
          { size: 2, maxPages: 10 },
          (afterSeq?: number) => repository.listBranch(key(chat.id), { throughId: last.id, limit: 2, afterSeq }),
          (message) => message.seq,
        );
        expect(contents(seen)).toEqual(['m1', 'm2', 'm3', 'n4', 'n5', 'n6', 'n7']);
      });

      it('should refuse a parent that is no message of the chat, storing nothing', async () => {
        const chat = await repository.createChat(newChat());
        const other = await repository.createChat(newChat());
        const theirs = await say(other.id, 'theirs');
        await say(chat.id, 'mine');
        for (const parentId of [theirs.id, '0190a000-0000-7000-8000-000000000000']) {
          await expect(say(chat.id, 'orphan', parentId)).rejects.toBeInstanceOf(UnknownMessageIdError);
        }
        expect(await repository.findChat(key(chat.id))).toMatchObject({ messageCount: 1 });
        expect(contents(await repository.listMessages(key(chat.id), { limit: 10 }))).toEqual(['mine']);
        expect(await say(chat.id, 'next')).toMatchObject({ seq: 2 });
      });

      it('should switch to the newest descendant of a message, and append after it', async () => {
        const chat = await repository.createChat(newChat());
        const q1 = await say(chat.id, 'q1');
        const a1 = await say(chat.id, 'a1');
        const q2 = await say(chat.id, 'q2');
        const a1b = await say(chat.id, 'a1b', q1.id);
        const q2b = await say(chat.id, 'q2b');
        const late = await say(chat.id, 'q3', q2.id); // newer, below a1

        expect((await repository.switchBranch(key(chat.id), a1.id))!.currentMessageId).toBe(late.id);
        expect((await repository.switchBranch(key(chat.id), a1b.id))!.currentMessageId).toBe(q2b.id);
        expect((await repository.switchBranch(key(chat.id), q1.id))!.currentMessageId).toBe(late.id);
        expect((await repository.switchBranch(key(chat.id), q2b.id))!.currentMessageId).toBe(q2b.id);
        const next = await say(chat.id, 'after q2b');
        expect(next.parentId).toBe(q2b.id);
        await repository.switchBranch(key(chat.id), q2.id);
        expect(await branchOf(chat.id, (await say(chat.id, 'after q3')).id)).toEqual([
          'q1',
          'a1',
          'q2',
          'q3',
          'after q3',
        ]);
        await expect(
          repository.switchBranch(key(chat.id), '0190a000-0000-7000-8000-000000000000'),
        ).rejects.toBeInstanceOf(UnknownMessageIdError);
        expect(await repository.switchBranch(key('0190a000-0000-7000-8000-000000000000'), q1.id)).toBeNull();
      });

      it('should form one line of simultaneous appends that follow the current message', async () => {
        const chat = await repository.createChat(newChat());
        await Promise.all(Array.from({ length: 20 }, (_, i) => say(chat.id, `m${i}`)));
        const stored = await repository.listMessages(key(chat.id), { limit: 100 });
        expect(stored.map((m) => m.parentId)).toEqual([null, ...stored.slice(0, -1).map((m) => m.id)]);
        const current = (await repository.findChat(key(chat.id)))!.currentMessageId!;
        expect(await branchOf(chat.id, current)).toEqual(contents(stored));
      });
    });

    describe('importChat', () => {
      const contents = (messages: { content: string }[]) => messages.map((m) => m.content);
      const branchOf = async (chatId: string, throughId: string) =>
        contents(await repository.listBranch(key(chatId), { throughId, limit: 1000 }));

      it('should store a whole chat: its times, its messages as given by seq, and its current message', async () => {
        // m1 ← m2 ← m3 ← m4, m2 ← m5 ← m6 (an edit), m1 ← m7 (a second reply), m8 a second root.
        const messages = importedMessages([null, 0, 1, 2, 1, 4, 0, null]);
        messages[3] = {
          ...messages[3],
          status: 'incomplete',
          content: '',
          model: 'gpt-test',
          inReplyTo: messages[2].id,
        };
        messages[1] = { ...messages[1], usage: { promptTokens: 12, completionTokens: 5 }, tokenCount: 9 };
        const createdAt = new Date('2025-12-31T09:00:00.000Z');
        const before = Date.now();
        const chat = await repository.importChat({
          chat: newChat({ title: 'Imported', metadata: { source: 'export' } }),
          createdAt,
          messages,
          currentMessageId: messages[5].id,
        });

        expect(isUuid(chat.id) && uuidVersion(chat.id)).toBe(7);
        expect(chat).toEqual({
          id: chat.id,
          tenantId: TENANT,
          title: 'Imported',
          systemPrompt: null,
          model: 'test-model',
          metadata: { source: 'export' },
          messageCount: 8,
          createdAt,
          updatedAt: expect.any(Date),
          lastMessageAt: new Date(messages[7].createdAt),
          currentMessageId: messages[5].id,
        });
        expect(chat.updatedAt.getTime()).toBeGreaterThanOrEqual(before);
        expect(await repository.findChat(key(chat.id))).toEqual(chat);
        const stored = await repository.listMessages(key(chat.id), { limit: 100 });
        expect(stored).toEqual(messages.map((m, i) => ({ ...m, chatId: chat.id, seq: i + 1 })));
        expect(await repository.findMessage(key(chat.id), messages[4].id)).toEqual(stored[4]);

        expect(await branchOf(chat.id, messages[5].id)).toEqual(['m1', 'm2', 'm5', 'm6']);
        expect(await branchOf(chat.id, messages[3].id)).toEqual(['m1', 'm2', 'm3', '']);
        expect(await branchOf(chat.id, messages[6].id)).toEqual(['m1', 'm7']);
        expect(await branchOf(chat.id, messages[7].id)).toEqual(['m8']);
        expect(
          contents(await repository.listRecentMessages(key(chat.id), { throughId: messages[5].id, limit: 10 })),
        ).toEqual(['m6', 'm5', 'm2', 'm1']);
        expect((await repository.listChats(TENANT, { limit: 10 })).map((c) => c.id)).toEqual([chat.id]);
      });

      it('should go on as a chat of its own would: appends, edits and switches', async () => {
        const messages = importedMessages([null, 0, 1, 2, 1, 4]);
        const chat = await repository.importChat({
          chat: newChat(),
          createdAt: new Date(),
          messages,
          currentMessageId: messages[5].id,
        });
        const next = await repository.appendMessage(key(chat.id), userMessage('after m6'));
        expect(next).toMatchObject({ seq: 7, parentId: messages[5].id });
        expect(await branchOf(chat.id, next.id)).toEqual(['m1', 'm2', 'm5', 'm6', 'after m6']);
        const edit = await repository.appendMessage(
          key(chat.id),
          userMessage('edit of m3', { parentId: messages[1].id }),
        );
        expect(await branchOf(chat.id, edit.id)).toEqual(['m1', 'm2', 'edit of m3']);
        expect((await repository.switchBranch(key(chat.id), messages[2].id))!.currentMessageId).toBe(messages[3].id);
        const afterM4 = await repository.appendMessage(key(chat.id), userMessage('after m4'));
        expect(await branchOf(chat.id, afterM4.id)).toEqual(['m1', 'm2', 'm3', 'm4', 'after m4']);
        expect(await repository.findChat(key(chat.id))).toMatchObject({
          messageCount: 9,
          currentMessageId: afterM4.id,
        });
      });

      it("should import a chat without messages, listed by its id among the tenant's chats", async () => {
        const older = await repository.createChat(newChat());
        const chat = await repository.importChat({
          chat: newChat({ tenantId: 'tenant-b' }),
          createdAt: new Date('2020-01-01T00:00:00.000Z'),
          messages: [],
          currentMessageId: null,
        });
        const newer = await repository.importChat({
          chat: newChat(),
          createdAt: new Date(0),
          messages: [],
          currentMessageId: null,
        });
        expect(chat).toMatchObject({
          tenantId: 'tenant-b',
          messageCount: 0,
          lastMessageAt: null,
          currentMessageId: null,
        });
        expect(await repository.findChat(key(chat.id))).toBeNull();
        expect((await repository.listChats(TENANT, { limit: 10 })).map((c) => c.id)).toEqual([newer.id, older.id]);
        expect((await repository.appendMessage(key(newer.id), userMessage('first'))).seq).toBe(1);
      });

      it('should refuse a parent that is no earlier message, storing nothing', async () => {
        const messages = importedMessages([null, 0, 1]);
        messages[1] = { ...messages[1], parentId: messages[2].id };
        await expect(
          repository.importChat({ chat: newChat(), createdAt: new Date(), messages, currentMessageId: messages[2].id }),
        ).rejects.toBeInstanceOf(UnknownMessageIdError);
        expect(await repository.listChats(TENANT, { limit: 10 })).toEqual([]);
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

      it('should let a caller whose signal aborts leave the line at once, the others keeping their order', async () => {
        const chat = await repository.createChat(newChat());
        const gate = deferred();
        const order: string[] = [];
        const holding = repository.withChatLock(chat.id, async () => {
          await gate.promise;
          order.push('holder');
        });
        const leaving = new AbortController();
        const left = repository.withChatLock(chat.id, async () => void order.push('left'), leaving.signal);
        const next = repository.withChatLock(chat.id, async () => void order.push('next'));
        leaving.abort('shutting-down');

        await expect(left).rejects.toBe('shutting-down');
        order.push('gave up');
        gate.resolve();
        await Promise.all([holding, next]);
        expect(order).toEqual(['gave up', 'holder', 'next']);
        // Already aborted: it does not queue at all.
        await expect(repository.withChatLock(chat.id, async () => 'ran', leaving.signal)).rejects.toBe('shutting-down');
        await expect(repository.withChatLock(chat.id, async () => 'free')).resolves.toBe('free');
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
