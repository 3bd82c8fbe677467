import { ChatNotFoundError, MessageNotFoundError, UnknownMessageIdError } from '../../src/chats/chat-errors';
import { IdempotencyKeyInUseError, IdempotencyKeyReusedError } from '../../src/idempotency/idempotency-errors';
import { IdempotencyScope } from '../../src/idempotency/idempotency.store';
import { LlmUnavailableError } from '../../src/llm/llm-errors';
import { LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';
import {
  ChatBusyError,
  MessageTooLongForContextError,
  ReplyFailedError,
  ShuttingDownError,
  TurnCancelledError,
  TurnInterruptedError,
} from '../../src/messages/message-errors';
import { MessagesService } from '../../src/messages/messages.service';
import { echoReply } from '../support/recording-llm-provider';
import { newTurnService } from '../support/turn-fixtures';

/** Resolves when the request's signal aborts, as an upstream call that is cut off would. */
const untilAborted = (request: LlmRequest): Promise<never> =>
  new Promise((_resolve, reject) => request.signal!.addEventListener('abort', () => reject(request.signal!.reason)));

describe(MessagesService.name, () => {
  let ctx: Awaited<ReturnType<typeof newTurnService>>;
  beforeEach(async () => {
    ctx = await newTurnService();
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await ctx.close();
  });

  /** Storing a reply fails, as a database that went away mid-turn would: a user message still stores. */
  const failToStoreReplies = (times = Infinity) => {
    const append = ctx.repository.appendMessage.bind(ctx.repository);
    let failures = 0;
    jest
      .spyOn(ctx.repository, 'appendMessage')
      .mockImplementation((key, message, ...rest) =>
        message.role === 'assistant' && failures++ < times
          ? Promise.reject(new Error('disk full'))
          : append(key, message, ...rest),
      );
  };

  describe('a new message', () => {
    it('should store the user message and the reply, and report admitted, the message, the deltas, the reply', async () => {
      const chat = await ctx.newChat();
      const { done, events } = ctx.run(ctx.newTurn(chat, 'Hello there'));
      const turn = await done;

      expect(turn.userMessage).toMatchObject({ seq: 1, role: 'user', content: 'Hello there' });
      expect(turn.assistantMessage).toMatchObject({
        seq: 2,
        role: 'assistant',
        content: 'reply to: Hello there',
        inReplyTo: turn.userMessage.id,
        status: 'completed',
      });
      expect(events[0]).toEqual({ type: 'admitted', replayed: false });
      expect(events[1]).toEqual({ type: 'user_message', id: expect.any(String), message: turn.userMessage });
      const deltas = events.slice(2, -1);
      expect(deltas.every((e) => e.type === 'delta')).toBe(true);
      expect(deltas.map((e) => (e.type === 'delta' ? e.content : '')).join('')).toBe(turn.assistantMessage.content);
      expect(events.at(-1)).toEqual({
        type: 'assistant_message',
        id: expect.any(String),
        message: turn.assistantMessage,
      });
      // Each event is named by the turn (its user message and reply) and its place in it.
      const ids = events.slice(1).map((e) => ('id' in e ? e.id : ''));
      const turnName = `${turn.userMessage.id}.${turn.assistantMessage.id}`;
      expect(ids).toEqual(ids.map((_, i) => `${turnName}.${i}`));
      expect(await ctx.messagesOf(chat)).toEqual([turn.userMessage, turn.assistantMessage]);
    });

    it('should send the history through the new message as context, after the system prompt', async () => {
      const chat = await ctx.newChat();
      await ctx.run(ctx.newTurn(chat, 'first')).done;
      await ctx.run(ctx.newTurn(chat, 'second')).done;

      const sent = ctx.llm.calls[1].request.messages.map((m) => `${m.role}:${m.content}`);
      expect(sent.slice(1)).toEqual(['user:first', 'assistant:reply to: first', 'user:second']);
      expect(sent[0]).toMatch(/^system:/);
    });

    it('should title an untitled chat from its first message, and leave a titled one as it is', async () => {
      const untitled = await ctx.newChat();
      const titled = await ctx.newChat({ title: 'Mine' });
      await ctx.run(ctx.newTurn(untitled, 'How do I reset my password?')).done;
      await ctx.run(ctx.newTurn(titled, 'How do I reset my password?')).done;

      expect((await ctx.chats.get(untitled)).title).toBe('How do I reset my password');
      expect((await ctx.chats.get(titled)).title).toBe('Mine');
    });

    it.each([
      ['answered', 'assistant_message'],
      ['failed', 'failed'],
    ] as const)(
      'should title an untitled chat before its first turn, %s, sends its final event',
      async (_outcome, finalType) => {
        const chat = await ctx.newChat();
        if (finalType === 'failed')
          ctx.llm.respond = () => {
            throw new LlmUnavailableError('The language model answered HTTP 503.');
          };
        // A client that reads the chat on the final event (to show its new title) finds the title.
        let titleAtFinal: Promise<string | null> | undefined;
        const { done } = ctx.run(ctx.newTurn(chat, 'How do I reset my password?'), {
          onEvent: (event) => {
            if (event.type === finalType) titleAtFinal = ctx.chats.get(chat).then((c) => c.title);
          },
        });
        await done.catch(() => undefined);

        expect(titleAtFinal).toBeDefined();
        expect(await titleAtFinal).toBe('How do I reset my password');
      },
    );

    it('should title a new chat before storing its reply, whose write lets go of the chat on a database', async () => {
      // From that write on, another instance may run the chat's next turn: a stop sent to this one
      // while it still wrote the title would be taken by a turn that is over, and lost.
      const chat = await ctx.newChat();
      const setTitle = ctx.repository.setTitleIfUntitled.bind(ctx.repository);
      let storedWhenTitled: string[] | undefined;
      jest.spyOn(ctx.repository, 'setTitleIfUntitled').mockImplementation(async (key, title) => {
        storedWhenTitled = (await ctx.messagesOf(chat)).map((m) => m.role);
        return setTitle(key, title);
      });

      await ctx.run(ctx.newTurn(chat, 'How do I reset my password?')).done;

      expect(storedWhenTitled).toEqual(['user']);
      expect((await ctx.chats.get(chat)).title).toBe('How do I reset my password');
    });

    it('should still title an untitled chat whose first turn stored its message and then failed', async () => {
      const chat = await ctx.newChat();
      failToStoreReplies();
      await expect(ctx.run(ctx.newTurn(chat, 'How do I reset my password?')).done).rejects.toThrow('disk full');

      // The message was stored, so no later turn is the chat's first: this one titled it.
      expect((await ctx.messagesOf(chat)).map((m) => m.role)).toEqual(['user']);
      expect((await ctx.chats.get(chat)).title).toBe('How do I reset my password');
    });

    it('should title from the first message, not ask the LLM, when AUTO_TITLE=llm and the first reply failed', async () => {
      await ctx.close();
      ctx = await newTurnService({ AUTO_TITLE: 'llm' });
      const chat = await ctx.newChat();
      ctx.llm.respond = (request, call) => {
        if (call === 1) throw new LlmUnavailableError('The language model answered HTTP 503.');
        return echoReply(request);
      };
      await expect(ctx.run(ctx.newTurn(chat, 'How do I reset my password?')).done).rejects.toBeInstanceOf(
        ReplyFailedError,
      );

      expect((await ctx.chats.get(chat)).title).toBe('How do I reset my password');
      expect(ctx.llm.calls).toHaveLength(1);

      // A first reply that succeeds is followed by the call for its title.
      await ctx.run(ctx.newTurn(await ctx.newChat(), 'How do I reset my password?')).done;
      expect(ctx.llm.calls).toHaveLength(3);
    });

    it('should refuse what fails before admission without any event: an unknown chat, a message that cannot fit', async () => {
      await ctx.close();
      ctx = await newTurnService({ LLM_CONTEXT_TOKENS: '2048' });
      const chat = await ctx.newChat();
      const unknown = ctx.run(ctx.newTurn({ ...chat, chatId: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e' }, 'hi'));
      await expect(unknown.done).rejects.toBeInstanceOf(ChatNotFoundError);
      const huge = ctx.run(ctx.newTurn(chat, 'word '.repeat(3000)));
      await expect(huge.done).rejects.toBeInstanceOf(MessageTooLongForContextError);

      expect([...unknown.events, ...huge.events]).toEqual([]);
      expect(await ctx.messagesOf(chat)).toEqual([]);
      expect(ctx.llm.calls).toHaveLength(0);
    });

    it('should refuse a turn beyond the chat’s waiting places with 429 before anything is stored', async () => {
      await ctx.close();
      ctx = await newTurnService({ MAX_PENDING_TURNS_PER_CHAT: '1' });
      const chat = await ctx.newChat();
      const gate = ctx.holdReplies();
      const first = ctx.run(ctx.newTurn(chat, 'first'));
      // The turn that holds the chat takes no waiting place.
      await first.reached('user_message');
      const second = ctx.run(ctx.newTurn(chat, 'second'));
      await second.reached('admitted');
      const third = ctx.run(ctx.newTurn(chat, 'third'));

      await expect(third.done).rejects.toBeInstanceOf(ChatBusyError);
      gate.resolve();
      await Promise.all([first.done, second.done]);
      expect((await ctx.messagesOf(chat)).map((m) => m.content)).toEqual([
        'first',
        'reply to: first',
        'second',
        'reply to: second',
      ]);
    });
  });

  describe('failures', () => {
    it('should keep the user message and report the upstream failure with it', async () => {
      const chat = await ctx.newChat();
      ctx.llm.respond = () => {
        throw new LlmUnavailableError('The language model answered HTTP 503.', 7);
      };
      const { done } = ctx.run(ctx.newTurn(chat, 'Plan my day'));

      const failure = (await done.catch((error: unknown) => error)) as ReplyFailedError;
      expect(failure).toBeInstanceOf(ReplyFailedError);
      expect(failure).toMatchObject({ code: 'llm-unavailable', retryAfterSeconds: 7, partialReply: null });
      expect(await ctx.messagesOf(chat)).toEqual([failure.userMessage]);
    });

    it('should store what was generated before the client left as incomplete', async () => {
      const chat = await ctx.newChat();
      ctx.llm.respond = (request) =>
        (async function* (): AsyncGenerator<LlmStreamPart> {
          yield { type: 'delta', content: 'Once upon ' };
          await untilAborted(request);
        })();
      let stop!: () => void;
      const { done, reached } = ctx.run(ctx.newTurn(chat, 'Tell me a story'), {
        whenClientLeaves: (stopTurn) => (stop = stopTurn),
      });
      await reached('delta');
      stop();

      const failure = (await done.catch((error: unknown) => error)) as TurnCancelledError;
      expect(failure).toBeInstanceOf(TurnCancelledError);
      expect(failure.partialReply).toMatchObject({ seq: 2, content: 'Once upon ', status: 'incomplete' });
      expect((await ctx.messagesOf(chat)).map((m) => m.status)).toEqual(['completed', 'incomplete']);
    });

    /** A turn holds the chat until `gate` opens; a second turn waits for it, and its client leaves. */
    const aTurnLeftWhileWaiting = async () => {
      const chat = await ctx.newChat();
      const gate = ctx.holdReplies();
      const first = ctx.run(ctx.newTurn(chat, 'first'));
      let stop!: () => void;
      const waiting = ctx.run(ctx.newTurn(chat, 'second'), { whenClientLeaves: (s) => (stop = s) });
      await waiting.reached('admitted');
      stop();
      return { chat, gate, first, waiting };
    };

    it('should store nothing for a turn whose client left while it waited for the chat', async () => {
      const { chat, gate, first, waiting } = await aTurnLeftWhileWaiting();
      gate.resolve();

      // Either may end first: the first turn still titles its chat once it has let go of the chat.
      await Promise.all([first.done, expect(waiting.done).rejects.toBeInstanceOf(TurnCancelledError)]);
      expect((await ctx.messagesOf(chat)).map((m) => m.content)).toEqual(['first', 'reply to: first']);
    });

    it('should time every wait for the chat’s lock by how it ended, a wait given up too', async () => {
      const { chat, gate, first, waiting } = await aTurnLeftWhileWaiting();
      await expect(waiting.done).rejects.toBeInstanceOf(TurnCancelledError);
      gate.resolve();
      await first.done;
      jest.spyOn(ctx.repository, 'withChatLock').mockRejectedValueOnce(new Error('database down'));
      // Nothing was stored: the turn is interrupted, and may be sent again.
      await expect(ctx.run(ctx.newTurn(chat, 'third')).done).rejects.toBeInstanceOf(TurnInterruptedError);

      const text = await ctx.metrics.registry.getSingleMetricAsString('chat_lock_wait_seconds');
      expect(text).toContain('chat_lock_wait_seconds_count{outcome="acquired"} 1');
      expect(text).toContain('chat_lock_wait_seconds_count{outcome="gave-up"} 1');
      expect(text).toContain('chat_lock_wait_seconds_count{outcome="failed"} 1');
    });

    it('should stop a running turn when shutdown’s grace is over, keeping what it had', async () => {
      const chat = await ctx.newChat();
      ctx.llm.respond = (request) =>
        (async function* (): AsyncGenerator<LlmStreamPart> {
          yield { type: 'delta', content: 'Partial' };
          await untilAborted(request);
        })();
      const { done, reached } = ctx.run(ctx.newTurn(chat, 'Long answer please'));
      await reached('delta');
      const drained = ctx.admission.drain(0);

      const failure = (await done.catch((error: unknown) => error)) as ReplyFailedError;
      await drained;
      expect(failure).toBeInstanceOf(ReplyFailedError);
      expect(failure.failure).toBeInstanceOf(ShuttingDownError);
      expect(failure.partialReply).toMatchObject({ content: 'Partial', status: 'incomplete' });
    });
  });

  describe('repeats with an Idempotency-Key', () => {
    it('should replay a completed turn without calling the LLM, saying it is a replay', async () => {
      const chat = await ctx.newChat();
      const first = await ctx.run(ctx.newTurn(chat, 'Once', 'key-1')).done;
      const repeat = ctx.run(ctx.newTurn(chat, 'Once', 'key-1'));

      expect(await repeat.done).toEqual(first);
      const turnName = `${first.userMessage.id}.${first.assistantMessage.id}`;
      expect(repeat.events).toEqual([
        { type: 'admitted', replayed: true },
        { type: 'user_message', id: `${turnName}.0`, message: first.userMessage },
        { type: 'delta', id: `${turnName}.1`, content: first.assistantMessage.content },
        { type: 'assistant_message', id: `${turnName}.2`, message: first.assistantMessage },
      ]);
      expect(ctx.llm.calls).toHaveLength(1);
      expect(await ctx.messagesOf(chat)).toHaveLength(2);
    });

    it('should answer the stored user message after a failed attempt, with the history it had', async () => {
      const chat = await ctx.newChat();
      ctx.llm.respond = (request, call) => {
        if (call === 1) throw new LlmUnavailableError('The language model answered HTTP 503.');
        return echoReply(request);
      };
      const failed = (await ctx
        .run(ctx.newTurn(chat, 'Plan my day', 'key-2'))
        .done.catch((error: unknown) => error)) as ReplyFailedError;
      await ctx.run(ctx.newTurn(chat, 'Unrelated')).done;

      const retried = await ctx.run(ctx.newTurn(chat, 'Plan my day', 'key-2')).done;

      expect(retried.userMessage).toEqual(failed.userMessage);
      expect(retried.assistantMessage).toMatchObject({ seq: 4, inReplyTo: failed.userMessage.id });
      expect(ctx.llm.calls[2].request.messages.slice(1).map((m) => m.content)).toEqual(['Plan my day']);
      expect((await ctx.messagesOf(chat)).filter((m) => m.content === 'Plan my day')).toHaveLength(1);
    });

    it.each([
      ['completed', undefined],
      ['cut short at its token limit', 'length'],
    ])('should find a reply stored but not recorded, %s, and not generate another', async (_, reason) => {
      const chat = await ctx.newChat();
      ctx.llm.respond = (request) => ({ ...echoReply(request), reason });
      jest.spyOn(ctx.idempotencyStore, 'complete').mockRejectedValueOnce(new Error('storage hiccup'));
      const first = await ctx.run(ctx.newTurn(chat, 'Once only', 'key-3')).done;
      expect(first.assistantMessage.status).toBe(reason ? 'incomplete' : 'completed');
      // The key was left running; once its lease lapses, a repeat takes it over.
      jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 60_000);

      const repeat = ctx.run(ctx.newTurn(chat, 'Once only', 'key-3'));

      expect(await repeat.done).toEqual(first);
      expect(repeat.events.map((e) => e.type)).toEqual(['admitted', 'user_message', 'delta', 'assistant_message']);
      expect(ctx.llm.calls).toHaveLength(1);
      expect((await ctx.messagesOf(chat)).map((m) => m.seq)).toEqual([1, 2]);
      jest.restoreAllMocks();
    });

    it('should find the user message of an attempt that failed after storing it, and never store it twice', async () => {
      const chat = await ctx.newChat();
      failToStoreReplies(1);
      await expect(ctx.run(ctx.newTurn(chat, 'Store me once', 'key-5')).done).rejects.toThrow('disk full');
      const [stored] = await ctx.messagesOf(chat);

      const repeat = await ctx.run(ctx.newTurn(chat, 'Store me once', 'key-5')).done;

      expect(repeat.userMessage).toEqual(stored);
      expect((await ctx.messagesOf(chat)).map((m) => `${m.seq}:${m.role}`)).toEqual(['1:user', '2:assistant']);
    });

    it('should store the message once on a repeat when the attempt recorded its ids and then failed to store it', async () => {
      const chat = await ctx.newChat();
      jest.spyOn(ctx.repository, 'appendMessageWithChat').mockRejectedValueOnce(new Error('disk full'));
      await expect(ctx.run(ctx.newTurn(chat, 'Store me once', 'key-9')).done).rejects.toThrow('disk full');
      expect(await ctx.messagesOf(chat)).toEqual([]);

      const repeat = await ctx.run(ctx.newTurn(chat, 'Store me once', 'key-9')).done;

      expect(await ctx.messagesOf(chat)).toEqual([repeat.userMessage, repeat.assistantMessage]);
      expect((await ctx.chats.get(chat)).title).toBe('Store me once');
    });

    it('should store nothing when the key cannot record the attempt, and the message once on a repeat', async () => {
      const chat = await ctx.newChat();
      jest.spyOn(ctx.idempotencyStore, 'recordProgress').mockRejectedValueOnce(new Error('storage hiccup'));
      await expect(ctx.run(ctx.newTurn(chat, 'Store me once', 'key-6')).done).rejects.toThrow('storage hiccup');
      expect(await ctx.messagesOf(chat)).toEqual([]);

      await ctx.run(ctx.newTurn(chat, 'Store me once', 'key-6')).done;

      expect((await ctx.messagesOf(chat)).map((m) => `${m.seq}:${m.role}`)).toEqual(['1:user', '2:assistant']);
      expect((await ctx.chats.get(chat)).title).toBe('Store me once');
    });

    it('should record a send as ids that releases before this one cannot take for a stored message', async () => {
      const chat = await ctx.newChat();
      const recordProgress = jest.spyOn(ctx.idempotencyStore, 'recordProgress');

      const turn = await ctx.run(ctx.newTurn(chat, 'Plan my day', 'key-7')).done;

      // Those releases read a record without a userMessage as a bare message, and answer a
      // userMessage with its replyId: given null and no replyId, they fail before writing anything.
      const recorded = recordProgress.mock.calls.map(([, , progress]) => JSON.parse(progress) as unknown);
      expect(recorded).toEqual([
        { userMessage: null, userMessageId: turn.userMessage.id, plannedReplyId: turn.assistantMessage.id },
      ]);
    });

    it('should store nothing once its key has passed to a repeat, and leave the work to that repeat', async () => {
      const chat = await ctx.newChat();
      // The key's lease lapsed (the instance could not renew it) and a repeat took it over.
      jest.spyOn(ctx.idempotencyStore, 'recordProgress').mockResolvedValueOnce(false);

      await expect(ctx.run(ctx.newTurn(chat, 'Store me once', 'key-10')).done).rejects.toBeInstanceOf(
        IdempotencyKeyInUseError,
      );

      expect(await ctx.messagesOf(chat)).toEqual([]);
      expect(ctx.llm.calls).toHaveLength(0);
    });

    it('should refuse the key with another body, and while its first request still runs', async () => {
      const chat = await ctx.newChat();
      const gate = ctx.holdReplies();
      const first = ctx.run(ctx.newTurn(chat, 'Slow one', 'key-4'));

      await expect(ctx.run(ctx.newTurn(chat, 'Slow one', 'key-4')).done).rejects.toBeInstanceOf(
        IdempotencyKeyInUseError,
      );
      await expect(ctx.run(ctx.newTurn(chat, 'Another body', 'key-4')).done).rejects.toBeInstanceOf(
        IdempotencyKeyReusedError,
      );
      gate.resolve();
      await first.done;
      expect(ctx.llm.calls).toHaveLength(1);
    });
  });

  describe('branches', () => {
    it('should refuse a parent that is no message of the chat before any event, storing nothing', async () => {
      const chat = await ctx.newChat();
      const other = await ctx.newChat();
      const theirs = await ctx.run(ctx.newTurn(other, 'theirs')).done;
      const turn = ctx.run(ctx.newTurn(chat, 'orphan', undefined, theirs.userMessage.id));

      await expect(turn.done).rejects.toBeInstanceOf(UnknownMessageIdError);
      expect(turn.events).toEqual([]);
      expect(await ctx.messagesOf(chat)).toEqual([]);
    });

    it('should regenerate a reply beside the earlier one, starting with the existing user message', async () => {
      const chat = await ctx.newChat();
      const first = await ctx.run(ctx.newTurn(chat, 'one')).done;
      await ctx.run(ctx.newTurn(chat, 'two')).done;
      const again = ctx.run(ctx.newRegeneration(chat, first.assistantMessage.id));
      const turn = await again.done;

      expect(again.events[1]).toEqual({ type: 'user_message', id: expect.any(String), message: first.userMessage });
      expect(turn.assistantMessage).toMatchObject({ seq: 5, parentId: first.userMessage.id });
      expect(ctx.llm.calls[2].request.messages.slice(1).map((m) => m.content)).toEqual(['one']);
      expect((await ctx.chats.get(chat)).currentMessageId).toBe(turn.assistantMessage.id);
      await expect(
        ctx.run(ctx.newRegeneration(chat, '0190a000-0000-7000-8000-000000000000')).done,
      ).rejects.toBeInstanceOf(MessageNotFoundError);
    });

    it('should find a regeneration stored but not recorded, and not generate another', async () => {
      const chat = await ctx.newChat();
      const first = await ctx.run(ctx.newTurn(chat, 'one')).done;
      jest.spyOn(ctx.idempotencyStore, 'complete').mockRejectedValueOnce(new Error('storage hiccup'));
      const again = await ctx.run(ctx.newRegeneration(chat, first.userMessage.id, 'regen-1')).done;
      jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 60_000);

      expect(await ctx.run(ctx.newRegeneration(chat, first.userMessage.id, 'regen-1')).done).toEqual(again);
      expect(ctx.llm.calls).toHaveLength(2);
      jest.restoreAllMocks();
    });

    it('should resume a failed regeneration with a reply of its own, though another request answered the message meanwhile', async () => {
      const chat = await ctx.newChat();
      const first = await ctx.run(ctx.newTurn(chat, 'one')).done;
      ctx.llm.respond = (request, call) => {
        if (call === 2) throw new LlmUnavailableError('The language model answered HTTP 503.');
        return echoReply(request);
      };
      await expect(ctx.run(ctx.newRegeneration(chat, first.userMessage.id, 'regen-2')).done).rejects.toBeInstanceOf(
        ReplyFailedError,
      );
      const other = await ctx.run(ctx.newRegeneration(chat, first.userMessage.id)).done;
      const resumed = await ctx.run(ctx.newRegeneration(chat, first.userMessage.id, 'regen-2')).done;

      expect(resumed.assistantMessage.id).not.toBe(other.assistantMessage.id);
      expect(resumed.assistantMessage).toMatchObject({ seq: 4, inReplyTo: first.userMessage.id });
      expect(ctx.llm.calls).toHaveLength(4);
    });

    it('should find a reply that an attempt of the release before branches stored, from the bare message it recorded', async () => {
      const chat = await ctx.newChat();
      // That release recorded the user message alone, once it was stored.
      const recordProgress = ctx.idempotencyStore.recordProgress.bind(ctx.idempotencyStore);
      let heldKey: [IdempotencyScope, string] | undefined;
      jest.spyOn(ctx.idempotencyStore, 'recordProgress').mockImplementation(async (scope, holder) => {
        heldKey = [scope, holder];
        return true;
      });
      const append = ctx.repository.appendMessageWithChat.bind(ctx.repository);
      jest.spyOn(ctx.repository, 'appendMessageWithChat').mockImplementation(async (...args) => {
        const appended = await append(...args);
        await recordProgress(...heldKey!, JSON.stringify(appended.message));
        return appended;
      });
      jest.spyOn(ctx.idempotencyStore, 'complete').mockRejectedValueOnce(new Error('storage hiccup'));
      const first = await ctx.run(ctx.newTurn(chat, 'Once only', 'old-key')).done;
      jest.spyOn(Date, 'now').mockReturnValue(Date.now() + 60_000);

      expect(await ctx.run(ctx.newTurn(chat, 'Once only', 'old-key')).done).toEqual(first);
      expect(ctx.llm.calls).toHaveLength(1);
      jest.restoreAllMocks();
    });
  });
});
