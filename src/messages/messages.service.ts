import { Injectable, Logger } from '@nestjs/common';
import { Chat, ChatKey, chatKeyOf } from '../chats/chat';
import { ChatLock, ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { decodeCursor, encodeCursor, Page } from '../common/pagination/cursor';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { HeldIdempotencyKey, IdempotencyService } from '../idempotency/idempotency.service';
import { LlmError, LlmUpstreamError } from '../llm/llm-errors';
import { LlmProvider, LlmUsage } from '../llm/llm-provider';
import { TokenCounter } from '../llm/token-counter';
import { Metrics } from '../metrics/metrics';
import { ChatDigests } from '../summaries/chat-digests';
import { ChatTitler } from '../summaries/chat-titles';
import { ContextBuilder } from './context-builder';
import { Message, messageFromJson, MessageStatus } from './message';
import { ReplyFailedError, ShuttingDownError, TurnCancelledError } from './message-errors';
import { Admission, stopReasonOf, TurnAdmission } from './turn-admission';

export interface Turn {
  userMessage: Message;
  assistantMessage: Message;
}

/** What a turn reports as it goes; a streamed response forwards each one as it happens. */
export type TurnEvent =
  | { type: 'user_message'; message: Message }
  | { type: 'delta'; content: string }
  | { type: 'assistant_message'; message: Message };

/**
 * A turn that passed the checks that need no lock (the chat exists, the message fits, the chat
 * is not overloaded) and holds its admission and its Idempotency-Key until `runTurn` ends.
 */
export interface PreparedTurn {
  kind: 'run';
  chat: ChatKey;
  /** The chat as the turn found it on arrival. */
  chatOnArrival: Chat;
  content: string;
  contentTokens: number;
  admission: Admission;
  idempotencyKey: HeldIdempotencyKey;
  /** The user message an earlier attempt with the same Idempotency-Key stored before it failed. */
  storedUserMessage: Message | null;
}

/** A repeat of a turn that already completed under the same Idempotency-Key: its outcome. */
export interface ReplayedTurn {
  kind: 'replay';
  turn: Turn;
}

const SEND_ROUTE = 'POST /chats/{chatId}/messages';
/** A reply follows its message within the turns that were waiting then (MAX_PENDING_TURNS_PER_CHAT). */
const REPLY_SEARCH_WINDOW = 1000;

const turnFromJson = (text: string): Turn => {
  const { userMessage, assistantMessage } = JSON.parse(text) as Record<keyof Turn, unknown>;
  return { userMessage: messageFromJson(userMessage), assistantMessage: messageFromJson(assistantMessage) };
};

export interface TurnOptions {
  onEvent?: (event: TurnEvent) => void;
  /** The id of the request that runs the turn, for its log lines. */
  requestId?: string;
}

const messagesCursorScope = (chatId: string) => `messages:${chatId}`;

@Injectable()
export class MessagesService {
  private readonly logger = new Logger(MessagesService.name);

  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly context: ContextBuilder,
    private readonly llm: LlmProvider,
    private readonly tokens: TokenCounter,
    private readonly titles: ChatTitler,
    private readonly digests: ChatDigests,
    private readonly metrics: Metrics,
    private readonly admission: TurnAdmission,
    private readonly idempotency: IdempotencyService,
    @llmConfig.inject() private readonly llmSettings: LlmConfig,
  ) {}

  /**
   * Errors that need no lock come first, before any response starts (404, 422, 409, 429, 503).
   * A repeat of a completed turn with the same Idempotency-Key is answered from its record.
   */
  async prepareTurn(chat: ChatKey, content: string, idempotencyKey?: string): Promise<PreparedTurn | ReplayedTurn> {
    const contentTokens = this.tokens.count(content);
    const chatOnArrival = await this.chats.get(chat);
    this.context.assertFits(chatOnArrival, contentTokens);
    const scope = idempotencyKey && { ...chat, route: SEND_ROUTE, key: idempotencyKey };
    const start = await this.idempotency.start(scope || undefined, { content });
    if (start.kind === 'replay') return { kind: 'replay', turn: turnFromJson(start.outcome) };
    const { held } = start;
    try {
      const storedUserMessage = held.progress === null ? null : messageFromJson(JSON.parse(held.progress));
      const admission = this.admission.admit(chat.chatId);
      return {
        kind: 'run',
        chat,
        chatOnArrival,
        content,
        contentTokens,
        admission,
        idempotencyKey: held,
        storedUserMessage,
      };
    } catch (error) {
      await held.release();
      throw error;
    }
  }

  /**
   * One turn: store the user message, stream the LLM's reply with the chat's context, store the
   * reply. The whole turn holds the chat's lock, so the reply to message n is generated with
   * messages 1 … n and stored as n + 1, whatever else arrives meanwhile. Plain and streamed
   * responses both run this; a plain one just waits for the end. An untitled chat is titled after
   * its first exchange, outside the lock.
   */
  async runTurn(turn: PreparedTurn, options: TurnOptions = {}): Promise<Turn> {
    let untitledFirstMessage: string | undefined;
    this.metrics.turnsInFlight.inc();
    try {
      const done = await this.runLockedTurn(turn, options, (firstMessage) => (untitledFirstMessage = firstMessage));
      this.digests.noteStored(turn.chat, done.assistantMessage.seq);
      return done;
    } finally {
      turn.admission.release();
      // After a failure the key stays with what was stored, so a repeat only generates the reply.
      await turn.idempotencyKey.release();
      this.metrics.turnsInFlight.dec();
      if (untitledFirstMessage !== undefined) await this.titles.titleNewChat(turn.chat, untitledFirstMessage);
    }
  }

  private runLockedTurn(
    { chat: key, chatOnArrival, content, contentTokens, admission, idempotencyKey, storedUserMessage }: PreparedTurn,
    { onEvent, requestId }: TurnOptions,
    onFirstMessageOfUntitledChat: (content: string) => void,
  ): Promise<Turn> {
    const { signal } = admission;
    const waitingForLock = this.metrics.chatLockWait.startTimer();
    return this.repository.withChatLock(key.chatId, async (lock) => {
      waitingForLock();
      // Stopped while the turn waited: nothing was acknowledged, so nothing is stored.
      if (stopReasonOf(signal) === 'client-left') throw new TurnCancelledError(null, null);
      if (stopReasonOf(signal) === 'shutting-down') throw new ShuttingDownError();
      let chat = chatOnArrival;
      let userMessage = storedUserMessage;
      if (userMessage) {
        chat = await this.chats.get(key);
        // An earlier attempt may have stored the reply and stopped before recording it: no second reply.
        const storedReply = await this.completedReplyTo(key, userMessage);
        if (storedReply) {
          await idempotencyKey.complete({ userMessage, assistantMessage: storedReply });
          onEvent?.({ type: 'user_message', message: userMessage });
          onEvent?.({ type: 'delta', content: storedReply.content });
          onEvent?.({ type: 'assistant_message', message: storedReply });
          return { userMessage, assistantMessage: storedReply };
        }
      } else {
        userMessage = await this.repository.appendMessage(
          key,
          {
            role: 'user',
            content,
            status: 'completed',
            inReplyTo: null,
            model: null,
            usage: null,
            tokenCount: contentTokens,
          },
          lock,
        );
        // Turns that ran first may have changed the chat's settings meanwhile: it is read again then.
        if (userMessage.seq !== chat.messageCount + 1) chat = await this.chats.get(key);
        await idempotencyKey.recordProgress(userMessage);
        if (userMessage.seq === 1 && chat.title === null) onFirstMessageOfUntitledChat(content);
      }
      onEvent?.({ type: 'user_message', message: userMessage });

      let reply = '';
      let finish: { model: string; usage: LlmUsage | null } | undefined;
      const llmCall = this.startLlmCall(chat, requestId);
      try {
        // A repeat answers its own message with the history it had, whatever came after.
        const messages = await this.context.build(chat, userMessage);
        const request = { model: chat.model, messages, maxOutputTokens: this.llmSettings.maxOutputTokens, signal };
        for await (const part of this.llm.stream(request)) {
          if (part.type === 'finish') {
            finish = part;
          } else if (part.content) {
            reply += part.content;
            onEvent?.({ type: 'delta', content: part.content });
          }
        }
      } catch (error) {
        const partial = reply ? await this.storeReply(lock, chat, userMessage, reply, 'incomplete') : null;
        if (stopReasonOf(signal) === 'client-left') {
          llmCall.end('cancelled', null);
          throw new TurnCancelledError(userMessage, partial);
        }
        const failure =
          stopReasonOf(signal) === 'shutting-down'
            ? new ShuttingDownError()
            : error instanceof LlmError
              ? error
              : new LlmUpstreamError('The language model provider failed unexpectedly.');
        llmCall.end(failure.code, null);
        throw new ReplyFailedError(failure, userMessage, partial);
      }
      llmCall.end('completed', finish?.usage ?? null);

      const assistantMessage = await this.storeReply(lock, chat, userMessage, reply, 'completed', finish);
      this.context.remember(chat, assistantMessage);
      await idempotencyKey.complete({ userMessage, assistantMessage });
      onEvent?.({ type: 'assistant_message', message: assistantMessage });
      return { userMessage, assistantMessage };
    });
  }

  async listMessages(chat: ChatKey, { limit, cursor }: { limit: number; cursor?: string }): Promise<Page<Message>> {
    await this.chats.get(chat);
    const scope = messagesCursorScope(chat.chatId);
    const afterSeq = cursor === undefined ? undefined : decodeCursor<number>(cursor, scope, 'number');
    const rows = await this.repository.listMessages(chat, { limit: limit + 1, afterSeq });
    const data = rows.slice(0, limit);
    return { data, nextCursor: rows.length > limit ? encodeCursor(scope, data[data.length - 1].seq) : null };
  }

  /** The completed reply to `userMessage`, looked for among the messages stored just after it. */
  private async completedReplyTo(chat: ChatKey, userMessage: Message): Promise<Message | undefined> {
    const after = await this.repository.listMessages(chat, { limit: REPLY_SEARCH_WINDOW, afterSeq: userMessage.seq });
    return after.find((m) => m.inReplyTo === userMessage.id && m.status === 'completed');
  }

  /** Times one LLM call for the metrics and a debug line (which carries the request id). */
  private startLlmCall(chat: Chat, requestId: string | undefined) {
    const labels = { provider: this.llm.name, model: chat.model };
    const startedAt = performance.now();
    return {
      end: (outcome: string, usage: LlmUsage | null) => {
        const seconds = (performance.now() - startedAt) / 1000;
        this.metrics.llmRequestDuration.observe({ ...labels, outcome }, seconds);
        if (usage) {
          this.metrics.llmTokens.inc({ ...labels, kind: 'prompt' }, usage.promptTokens);
          this.metrics.llmTokens.inc({ ...labels, kind: 'completion' }, usage.completionTokens);
        }
        this.logger.debug({
          msg: 'LLM call ended',
          req: { id: requestId },
          chatId: chat.id,
          ...labels,
          outcome,
          seconds,
          usage,
        });
      },
    };
  }

  private storeReply(
    lock: ChatLock,
    chat: Chat,
    userMessage: Message,
    content: string,
    status: MessageStatus,
    finish?: { model: string; usage: LlmUsage | null },
  ): Promise<Message> {
    return this.repository.appendMessage(
      chatKeyOf(chat),
      {
        role: 'assistant',
        content,
        status,
        inReplyTo: userMessage.id,
        model: finish?.model ?? chat.model,
        usage: finish?.usage ?? null,
        tokenCount: this.tokens.count(content),
      },
      lock,
    );
  }
}
