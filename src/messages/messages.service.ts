import { Injectable, Logger } from '@nestjs/common';
import { isUUID } from 'class-validator';
import { v7 as uuidv7 } from 'uuid';
import { Chat, ChatKey, chatKeyOf } from '../chats/chat';
import { ChatLeaseLostError, MessageNotFoundError, UnknownMessageIdError } from '../chats/chat-errors';
import { ChatLock, ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { Message, messageFromJson, MessageStatus, ReplyFailure } from '../chats/message';
import { messageOf } from '../common/errors/error-message';
import { StorageUnavailableError } from '../common/errors/storage-unavailable.error';
import { decodeCursor, encodeCursor, isSeqPosition, Page } from '../common/pagination/cursor';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { HeldIdempotencyKey, IdempotencyService } from '../idempotency/idempotency.service';
import { LlmCallMeter } from '../llm/llm-call-meter';
import { LlmError, LlmUpstreamError } from '../llm/llm-errors';
import { countedUsage, isCutShort, LlmMessage, LlmProvider, LlmUsage } from '../llm/llm-provider';
import { TokenCounter } from '../llm/token-counter';
import { Metrics } from '../metrics/metrics';
import { ChatDigests } from '../summaries/chat-digests';
import { ChatTitler } from '../summaries/chat-titles';
import { ContextBuilder } from './context-builder';
import { LiveTurns, RunningTurn } from './live-turns';
import {
  ReplyAnswersNoMessageError,
  ReplyFailedError,
  replyFailureOf,
  ShuttingDownError,
  TurnCancelledError,
  TurnInterruptedError,
} from './message-errors';
import {
  BegunTurn,
  RegenerateRequest,
  SendRequest,
  StreamedReply,
  Turn,
  TurnEvent,
  TurnOptions,
  TurnOutcome,
  TurnProgress,
  TurnRequest,
} from './turn';
import { ReplyText, storableModel } from './storable-reply';
import { Admission, stopReasonOf, TurnAdmission } from './turn-admission';
import { turnEventId } from './turn-event-ids';

const SEND_ROUTE = 'POST /chats/{chatId}/messages';
const REGENERATE_ROUTE = 'POST /chats/{chatId}/messages/{messageId}/regenerate';
/** A reply follows its message within the turns that were waiting then (MAX_PENDING_TURNS_PER_CHAT). */
const REPLY_SEARCH_WINDOW = 1000;
const ignoreEvent = (): void => undefined;
/** Whether the streamed reply is the turn's answer: whole, or stopped (and stored as it is). */
const isAnswer = (reply: StreamedReply, signal: AbortSignal): boolean =>
  reply.error === undefined || stopReasonOf(signal) === 'stopped';

/** A turn let in: its admission and Idempotency-Key are held until it ends. */
interface AdmittedTurn {
  kind: 'run';
  request: TurnRequest;
  /** Tokens of the new message's content (a send). */
  contentTokens: number;
  /** The stored user message a regeneration answers again. */
  answered: Message | null;
  admission: Admission;
  idempotencyKey: HeldIdempotencyKey;
  /** What an earlier attempt with the same Idempotency-Key recorded before it failed. */
  progress: TurnProgress | null;
}

/** A repeat of a turn that completed under the same Idempotency-Key: its outcome. */
interface ReplayedTurn {
  kind: 'replay';
  turn: Turn;
}

/** What a send or a regeneration checks before it is let in. */
interface Checked {
  contentTokens: number;
  answered: Message | null;
  route: string;
  fingerprint: object;
  chat: Chat;
  /** The tokens of the message the reply answers, which must fit the chat's context. */
  answeredTokens: number;
}

const turnFromJson = (text: string): Turn => {
  const { userMessage, assistantMessage } = JSON.parse(text) as Record<keyof Turn, unknown>;
  return { userMessage: messageFromJson(userMessage), assistantMessage: messageFromJson(assistantMessage) };
};

/**
 * Progress as recorded. The release before branches recorded the bare user message; releases
 * before ids were recorded first, the stored message.
 */
const progressFromJson = (text: string): TurnProgress => {
  const recorded = JSON.parse(text) as Record<string, unknown>;
  if (typeof recorded.userMessageId === 'string') {
    return { userMessageId: recorded.userMessageId, replyId: recorded.plannedReplyId as string };
  }
  if (recorded.userMessage === undefined) return { userMessage: messageFromJson(recorded) };
  return { userMessage: messageFromJson(recorded.userMessage), replyId: recorded.replyId as string };
};

/**
 * A send's record, before it stores its message. Releases before ids were recorded first may
 * serve a repeat while instances are being upgraded, and take a record without a `userMessage`
 * for a bare message, which they would answer though it is not there. Given `userMessage: null`
 * and no `replyId`, they fail the repeat before they store or record anything, so the ids stay for
 * the client's next repeat, which may reach this release.
 */
const plannedSend = (userMessageId: string, replyId: string) => ({
  userMessage: null,
  userMessageId,
  plannedReplyId: replyId,
});

const allMessagesCursorScope = (chatId: string) => `messages:${chatId}`;
const branchCursorScope = (chatId: string) => `branch:${chatId}`;

/**
 * A current-branch cursor's position: the branch's last message when its walk began (`t`) and the
 * last seq seen (`s`). A bare seq is a cursor issued before cursors named their branch.
 */
type BranchPosition = { t: string; s: number } | number;
const isBranchPosition = (position: unknown): position is BranchPosition => {
  if (isSeqPosition(position)) return true;
  const { t, s } = (position ?? {}) as { t?: unknown; s?: unknown };
  return typeof t === 'string' && isUUID(t) && isSeqPosition(s);
};

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
    private readonly llmCalls: LlmCallMeter,
    private readonly admissions: TurnAdmission,
    private readonly idempotency: IdempotencyService,
    private readonly live: LiveTurns,
    @llmConfig.inject() private readonly llmSettings: LlmConfig,
  ) {
    chats.onDeleted(({ chatId }) => context.forget(chatId));
  }

  /**
   * The life of one turn. The reply to a user message is generated with that message's branch up to
   * it, never a sibling's, and stored as its child, whatever else arrives meanwhile, since the
   * whole turn holds the chat's lock.
   * Plain and streamed requests run it alike: a streamed response opens at `admitted` and forwards
   * every event, a plain one waits for the end. What fails before `admitted` (404, 422, 409, 429,
   * 503) is thrown before any event; what fails after is thrown with the messages stored so far.
   */
  async runTurn(request: TurnRequest, { onEvent = ignoreEvent, whenClientLeaves, requestId }: TurnOptions = {}) {
    const admitted = await this.admit(request);
    if (admitted.kind === 'replay') return this.replay(admitted.turn, onEvent);
    const { admission, idempotencyKey } = admitted;
    whenClientLeaves?.(() => admission.stop('client-left'));
    onEvent({ type: 'admitted', replayed: false });
    this.metrics.turnsInFlight.inc();
    try {
      const outcome = await this.underChatLock(request.chat.chatId, admission, onEvent, (lock) =>
        // From here the turn can be stopped (POST …/stop) and followed (GET …/stream).
        this.live.run(
          lock,
          () => admission.stop('stopped'),
          onEvent,
          (turn) => this.answer(admitted, lock, turn, requestId),
        ),
      );
      await this.finish(request.chat, idempotencyKey, outcome);
      if (outcome.kind === 'failed') throw outcome.failure;
      return outcome.turn;
    } finally {
      admission.release();
      // After a failure the key keeps what was stored, so a repeat only generates the reply.
      await idempotencyKey.release();
      this.metrics.turnsInFlight.dec();
    }
  }

  /**
   * The turn once it holds the chat: its user message stored, its reply streamed and stored, then
   * its final event.
   */
  private async answer(
    admitted: AdmittedTurn,
    lock: ChatLock,
    turn: RunningTurn,
    requestId: string | undefined,
  ): Promise<TurnOutcome> {
    const { admission, request } = admitted;
    const stopped = this.stopWhileWaiting(admission);
    if (stopped) return { kind: 'failed', failure: stopped };
    // Set once the turn has stored the first message of an untitled chat, until it is titled.
    let newChatTitle: { firstMessage: string; draft?: Promise<string | null> } | undefined;
    const titleNewChat = async (askLlm: boolean) => {
      if (!newChatTitle) return;
      const { firstMessage, draft } = newChatTitle;
      newChatTitle = undefined;
      await this.titles.titleNewChat(request.chat, firstMessage, { draft, askLlm });
    };
    let outcome: TurnOutcome | undefined;
    let userMessage: Message | null = null;
    try {
      const begun = await this.resumeOrAppendUserMessage(admitted, lock);
      userMessage = begun.userMessage;
      if (begun.firstOfUntitledChat) newChatTitle = { firstMessage: begun.userMessage.content };
      turn.identify({ userMessageId: begun.userMessage.id, replyId: begun.replyId });
      turn.emit({ type: 'user_message', message: begun.userMessage });
      if (begun.storedReply) {
        // An earlier attempt stored the reply and stopped before recording it: no second reply.
        turn.emit({ type: 'delta', content: begun.storedReply.content });
        outcome = { kind: 'completed', turn: { userMessage, assistantMessage: begun.storedReply } };
      } else {
        const context = await this.context.build(begun.chat, userMessage);
        if (newChatTitle) newChatTitle.draft = this.titles.draftFromMessage(request.chat, newChatTitle.firstMessage);
        const reply = await this.streamReply(begun.chat, context, admission.signal, turn);
        // Before the reply's write, which on a database lets go of the chat (the turn must then end
        // at once), so that whoever reads the chat on the final event, here or on another
        // instance, finds the title. After a failure the LLM is not asked: it has just failed.
        await titleNewChat(isAnswer(reply, admission.signal));
        outcome = await this.storeReplyOrSortFailure(lock, begun, reply, admission.signal, requestId);
      }
    } catch (error) {
      // The instance stalled past its lease and another turn may hold the chat, or the database
      // went away: its writes are refused, and it ends as a turn cut off does, with what it had stored.
      if (!(error instanceof ChatLeaseLostError || error instanceof StorageUnavailableError)) throw error;
      outcome = { kind: 'failed', failure: new TurnInterruptedError(userMessage) };
    } finally {
      // However the turn ends, even by throwing, no later turn of the chat would be its first.
      await titleNewChat(false);
    }
    if (outcome.kind === 'completed') turn.emit({ type: 'assistant_message', message: outcome.turn.assistantMessage });
    return outcome;
  }

  /**
   * The chat's current branch, root first, or with `branch: 'all'` every message by seq. Each list
   * has cursors of its own: a branch's cursor is its last seq, since seq increases along a branch,
   * and the branch's last message as the first page found it, so that the pages of one walk form
   * one path however the chat's current branch changes meanwhile.
   */
  async listMessages(
    key: ChatKey,
    { limit, cursor, branch }: { limit: number; cursor?: string; branch?: 'current' | 'all' },
  ): Promise<Page<Message>> {
    const chat = await this.chats.get(key);
    if (branch === 'all') {
      const scope = allMessagesCursorScope(key.chatId);
      const afterSeq = cursor === undefined ? undefined : decodeCursor<number>(cursor, scope, 'number');
      const rows = await this.repository.listMessages(key, { limit: limit + 1, afterSeq });
      const data = rows.slice(0, limit);
      return { data, nextCursor: rows.length > limit ? encodeCursor(scope, data[data.length - 1].seq) : null };
    }
    const scope = branchCursorScope(key.chatId);
    const position = cursor === undefined ? undefined : decodeCursor(cursor, scope, isBranchPosition);
    const throughId = typeof position === 'object' ? position.t : chat.currentMessageId;
    const afterSeq = typeof position === 'object' ? position.s : position;
    // A forged tip that is no message of the chat lists nothing.
    const rows =
      throughId === null ? [] : await this.repository.listBranch(key, { throughId, limit: limit + 1, afterSeq });
    const data = rows.slice(0, limit);
    const next = rows.length > limit ? { t: throughId!, s: data[data.length - 1].seq } : null;
    return { data, nextCursor: next && encodeCursor(scope, next) };
  }

  /**
   * Admit it: the checks that need no lock (the chat exists, the message's parent is the chat's,
   * the key is free, the message fits, the chat is not overloaded). A repeat of a completed turn
   * with the same Idempotency-Key is answered from its record, as the first request was answered
   * even if the chat's settings have changed since.
   */
  private async admit(request: TurnRequest): Promise<AdmittedTurn | ReplayedTurn> {
    const { chat: key, idempotencyKey } = request;
    const { contentTokens, answered, route, fingerprint, chat, answeredTokens } =
      request.kind === 'send' ? await this.checkSend(request) : await this.checkRegenerate(request);
    const scope = idempotencyKey === undefined ? undefined : { ...key, route, key: idempotencyKey };
    const start = await this.idempotency.start(scope, fingerprint);
    if (start.kind === 'replay') return { kind: 'replay', turn: turnFromJson(start.outcome) };
    const { held } = start;
    try {
      this.context.assertFits(chat, answeredTokens);
      const progress = held.progress === null ? null : progressFromJson(held.progress);
      const admission = this.admissions.admit(key.chatId);
      return { kind: 'run', request, contentTokens, answered, admission, idempotencyKey: held, progress };
    } catch (error) {
      await held.release();
      throw error;
    }
  }

  private async checkSend({ chat: key, content, parentId }: SendRequest): Promise<Checked> {
    const contentTokens = this.tokens.count(content);
    const chat = await this.chats.get(key);
    if (typeof parentId === 'string' && !(await this.repository.findMessage(key, parentId))) {
      throw new UnknownMessageIdError(parentId, 'parentId');
    }
    const fingerprint = { content, parentId };
    return { contentTokens, answered: null, route: SEND_ROUTE, fingerprint, chat, answeredTokens: contentTokens };
  }

  /**
   * A regeneration answers a stored user message: the one named, or the one the named reply answers.
   * A reply that answers none (imported ones may) cannot be regenerated.
   */
  private async checkRegenerate({ chat: key, messageId }: RegenerateRequest): Promise<Checked> {
    const chat = await this.chats.get(key);
    const named = await this.repository.findMessage(key, messageId);
    if (!named) throw new MessageNotFoundError(messageId);
    const answered =
      named.role === 'user' || named.inReplyTo === null
        ? named
        : await this.repository.findMessage(key, named.inReplyTo);
    // An imported reply may answer none, or (imported before that was checked) another reply.
    if (answered?.role !== 'user') throw new ReplyAnswersNoMessageError(messageId);
    const fingerprint = { messageId: answered.id };
    return {
      contentTokens: 0,
      answered,
      route: REGENERATE_ROUTE,
      fingerprint,
      chat,
      answeredTokens: answered.tokenCount,
    };
  }

  /** A completed turn's events again, its reply as a single delta, named as the turn named them. */
  private replay(turn: Turn, onEvent: (event: TurnEvent) => void): Turn {
    const id = { userMessageId: turn.userMessage.id, replyId: turn.assistantMessage.id };
    onEvent({ type: 'admitted', replayed: true });
    onEvent({ type: 'user_message', id: turnEventId(id, 0), message: turn.userMessage });
    onEvent({ type: 'delta', id: turnEventId(id, 1), content: turn.assistantMessage.content });
    onEvent({ type: 'assistant_message', id: turnEventId(id, 2), message: turn.assistantMessage });
    return turn;
  }

  /**
   * `work` under the chat's lock. A turn stopped while it waits leaves the line at once, whatever
   * holds the chat (another instance too), and fails as {@link stopWhileWaiting} says; one whose
   * lock failed (the storage did) ends with turn-interrupted. A turn that never held the chat
   * reports its failure here, as its one event: no running turn did. Every wait
   * is timed, however it ends: the waits given up are often the ones that grew too long.
   */
  private async underChatLock(
    chatId: string,
    admission: Admission,
    onEvent: (event: TurnEvent) => void,
    work: (lock: ChatLock) => Promise<TurnOutcome>,
  ): Promise<TurnOutcome> {
    const waited = this.metrics.chatLockWait.startTimer();
    let held = false;
    const holding = (lock: ChatLock) => {
      held = true;
      admission.holdsChat();
      waited({ outcome: 'acquired' });
      return work(lock);
    };
    try {
      return await this.repository.withChatLock(chatId, holding, admission.signal);
    } catch (error) {
      if (held) throw error;
      const stopped = this.stopWhileWaiting(admission);
      waited({ outcome: stopped ? 'gave-up' : 'failed' });
      if (!stopped) {
        // The storage failed as the turn waited for the chat, or took it (the lock let go of it
        // again): nothing was stored, and sending again is safe.
        this.logger.warn(`A turn could not take chat ${chatId}: ${messageOf(error)}`);
      }
      const failure = stopped ?? new TurnInterruptedError(null);
      onEvent(this.live.failedWhileWaiting(chatId, failure));
      return { kind: 'failed', failure };
    }
  }

  /**
   * Stopped while it waited for the lock: nothing was acknowledged, so nothing is stored. Asked when
   * the wait ends by the stop, and again once the lock is held, for a stop that came as it was taken.
   * Only a client leaving or shutdown stop a waiting turn: POST …/stop reaches the running one.
   */
  private stopWhileWaiting({ signal }: Admission): ShuttingDownError | TurnCancelledError | null {
    const reason = stopReasonOf(signal);
    if (reason === 'client-left') return new TurnCancelledError(null, null);
    if (reason === 'shutting-down') return new ShuttingDownError();
    return null;
  }

  /**
   * Resume or append the user message: a repeat of a failed attempt answers the message that
   * attempt stored (and finds a reply it stored but could not record); a regeneration answers its
   * stored message; a send stores a new one. Either records its progress on the key first, so that
   * a repeat resumes from it.
   */
  private async resumeOrAppendUserMessage(turn: AdmittedTurn, lock: ChatLock): Promise<BegunTurn> {
    const { request } = turn;
    const key = request.chat;
    const progress = await this.storedProgress(key, turn.progress);
    if (progress) {
      const { userMessage } = progress;
      const storedReply = await this.replyStoredBefore(key, progress);
      const replyId = storedReply
        ? await this.keepStoredReply(turn, progress, storedReply)
        : await this.recordProgress(turn, userMessage);
      return { chat: await this.chats.get(key), userMessage, storedReply, replyId, firstOfUntitledChat: false };
    }
    if (request.kind === 'regenerate') {
      const userMessage = turn.answered!;
      const replyId = await this.recordProgress(turn, userMessage);
      const chat = await this.chats.get(key);
      return { chat, userMessage, storedReply: undefined, replyId, firstOfUntitledChat: false };
    }
    // Named under the lock, so both ids are newer than every message of the chat.
    const userMessageId = uuidv7();
    const replyId = uuidv7();
    await turn.idempotencyKey.recordProgress(plannedSend(userMessageId, replyId));
    // The chat as this write left it: settings changed while the turn waited for the lock are in it.
    const { message: userMessage, chat } = await this.repository.appendMessageWithChat(
      key,
      {
        id: userMessageId,
        role: 'user',
        content: request.content,
        status: 'completed',
        inReplyTo: null,
        parentId: request.parentId,
        model: null,
        usage: null,
        tokenCount: turn.contentTokens,
      },
      lock,
    );
    const firstOfUntitledChat = userMessage.seq === 1 && chat.title === null;
    return { chat, userMessage, storedReply: undefined, replyId, firstOfUntitledChat };
  }

  /**
   * What an earlier attempt recorded, with its user message as stored; null when there is none,
   * or when a send named its message and failed before storing it (it is then sent afresh).
   */
  private async storedProgress(
    key: ChatKey,
    progress: TurnProgress | null,
  ): Promise<Extract<TurnProgress, { userMessage: Message }> | null> {
    if (progress === null || 'userMessage' in progress) return progress;
    const userMessage = await this.repository.findMessage(key, progress.userMessageId);
    return userMessage && { userMessage, replyId: progress.replyId };
  }

  /**
   * Names the reply to come and records it with its user message on the key, for a repeat to
   * resume from. Under the lock, so the id is newer than every message of the chat.
   */
  private async recordProgress(turn: AdmittedTurn, userMessage: Message): Promise<string> {
    const replyId = uuidv7();
    await turn.idempotencyKey.recordProgress({ userMessage, replyId } satisfies TurnProgress);
    return replyId;
  }

  /**
   * A repeat answers the reply an earlier attempt stored: the turn is named by it, so that its
   * events resume to it, and no other id is recorded, so that every later repeat finds it too.
   * A record without its id (releases before branches) is given it: a repeat then finds it
   * however many messages follow.
   */
  private async keepStoredReply(
    turn: AdmittedTurn,
    { userMessage, replyId }: Extract<TurnProgress, { userMessage: Message }>,
    reply: Message,
  ): Promise<string> {
    if (replyId !== reply.id) {
      await turn.idempotencyKey.recordProgress({ userMessage, replyId: reply.id } satisfies TurnProgress);
    }
    return reply.id;
  }

  /**
   * The reply an earlier attempt with the same Idempotency-Key stored as its answer but could not
   * record: completed, or cut short (stopped, or at its token limit). What a failure left is not
   * one: the repeat generates the reply.
   */
  private async replyStoredBefore(
    chat: ChatKey,
    { userMessage, replyId }: Extract<TurnProgress, { userMessage: Message }>,
  ): Promise<Message | undefined> {
    if (replyId === undefined) return this.completedReplyTo(chat, userMessage);
    const reply = await this.repository.findMessage(chat, replyId);
    return reply && reply.failure === undefined ? reply : undefined;
  }

  /** Stream the reply: each delta is forwarded as it comes; a failure is kept, with what came before it. */
  private async streamReply(
    chat: Chat,
    messages: LlmMessage[],
    signal: AbortSignal,
    turn: RunningTurn,
  ): Promise<StreamedReply> {
    const reply: StreamedReply = { content: '', startedAt: performance.now() };
    const text = new ReplyText();
    try {
      const request = { model: chat.model, messages, maxOutputTokens: this.llmSettings.maxOutputTokens, signal };
      for await (const part of this.llm.stream(request)) {
        if (part.type === 'finish') {
          // Kept as an export shows it and an import takes it back.
          reply.finish = { ...part, model: storableModel(part.model) ?? chat.model, usage: countedUsage(part.usage) };
        } else if (part.content) {
          const content = text.take(part.content);
          reply.content = text.content;
          if (content) turn.emit({ type: 'delta', content });
          if (text.full) {
            // Leaving the loop closes the stream, which aborts the upstream call.
            reply.cut = true;
            break;
          }
        }
      }
    } catch (error) {
      reply.error = error;
    }
    const rest = text.end();
    if (rest) {
      reply.content = text.content;
      turn.emit({ type: 'delta', content: rest });
    }
    return reply;
  }

  /**
   * Store the reply, or sort the failure: a stopped turn keeps what was generated as its
   * (incomplete) reply; what was generated before a failure is kept as `incomplete` too, and the
   * failure says why (the client left, the service is stopping, or the upstream failed) with the
   * messages stored.
   */
  private async storeReplyOrSortFailure(
    lock: ChatLock,
    begun: BegunTurn,
    reply: StreamedReply,
    signal: AbortSignal,
    requestId: string | undefined,
  ): Promise<TurnOutcome> {
    const { userMessage, chat } = begun;
    const observe = (outcome: string, usage: LlmUsage | null) =>
      this.llmCalls.observe('turn', chat.id, chat.model, reply.startedAt, outcome, usage, requestId);
    const reason = stopReasonOf(signal);
    if (isAnswer(reply, signal)) {
      const stopped = reply.error !== undefined;
      // A reply the upstream cut short (its token limit, its content filter) is stored as one.
      const status = stopped || reply.cut || isCutShort(reply.finish?.reason) ? 'incomplete' : 'completed';
      observe(reply.cut ? 'cut' : stopped ? 'stopped' : 'completed', reply.finish?.usage ?? null);
      const assistantMessage = await this.storeReply(lock, begun, reply.content, status, { finish: reply.finish });
      this.context.remember(begun.chat, assistantMessage);
      return { kind: 'completed', turn: { userMessage, assistantMessage } };
    }
    const cause =
      reason === 'client-left'
        ? null
        : reason === 'shutting-down'
          ? new ShuttingDownError()
          : reply.error instanceof LlmError
            ? reply.error
            : new LlmUpstreamError('The language model provider failed unexpectedly.');
    const failureWith = (partial: Message | null) =>
      cause ? new ReplyFailedError(cause, userMessage, partial) : new TurnCancelledError(userMessage, partial);
    // The partial reply keeps the failure, so that a resume on another instance tells it too.
    const partial = reply.content
      ? await this.storeReply(lock, begun, reply.content, 'incomplete', { failure: replyFailureOf(failureWith(null)) })
      : null;
    observe(cause?.code ?? 'cancelled', null);
    return { kind: 'failed', failure: failureWith(partial) };
  }

  /**
   * Finish, outside the lock: the key keeps a completed turn's outcome for repeats, and the chat's
   * digest learns of the new messages.
   */
  private async finish(chat: ChatKey, idempotencyKey: HeldIdempotencyKey, outcome: TurnOutcome): Promise<void> {
    if (outcome.kind === 'completed') {
      await idempotencyKey.complete(outcome.turn);
      this.digests.noteStored(chat, outcome.turn.assistantMessage.seq);
    }
  }

  /**
   * The completed reply to `userMessage` among the messages stored just after it: how a repeat
   * finds its reply when the attempt before it recorded no reply id (releases before branches).
   */
  private async completedReplyTo(chat: ChatKey, userMessage: Message): Promise<Message | undefined> {
    const after = await this.repository.listMessages(chat, { limit: REPLY_SEARCH_WINDOW, afterSeq: userMessage.seq });
    return after.find((m) => m.inReplyTo === userMessage.id && m.status === 'completed');
  }

  private storeReply(
    lock: ChatLock,
    { chat, userMessage, replyId }: BegunTurn,
    content: string,
    status: MessageStatus,
    { finish, failure }: { finish?: StreamedReply['finish']; failure?: ReplyFailure } = {},
  ): Promise<Message> {
    return this.repository.appendMessage(
      chatKeyOf(chat),
      {
        id: replyId,
        role: 'assistant',
        content,
        status,
        inReplyTo: userMessage.id,
        parentId: userMessage.id,
        model: finish?.model ?? chat.model,
        usage: finish?.usage ?? null,
        tokenCount: this.tokens.count(content),
        ...(failure && { failure }),
      },
      lock,
      // A turn writes nothing after its reply: other instances may have the chat from here.
      { lastUnderLock: true },
    );
  }
}
