import { Injectable, Logger } from '@nestjs/common';
import { ChatKey } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { Message } from '../chats/message';
import { LiveTurns } from './live-turns';
import { recordedFailure, TurnElsewhereError, TurnInterruptedError, UnknownLastEventIdError } from './message-errors';
import { FinalTurnEvent, isFinal, StreamedTurnEvent, TurnId } from './turn';
import { couldNameReplyTo, END, parseTurnEventId, sameTurn, turnEventId, TurnPosition } from './turn-event-ids';
import { TurnRelay } from './turn-relay';

/** A Last-Event-ID as the client sent it, and where (the header, or the query). */
export interface LastEventId {
  value: string;
  field: 'Last-Event-ID' | 'lastEventId';
}

async function* only(event: StreamedTurnEvent): AsyncGenerator<StreamedTurnEvent> {
  yield event;
}

/**
 * Stopping a chat's running turn and resuming its stream, whichever instance runs it: this one
 * (LiveTurns), or another reached through the relay.
 */
@Injectable()
export class RunningTurnsService {
  private readonly logger = new Logger(RunningTurnsService.name);

  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly live: LiveTurns,
    private readonly relay: TurnRelay,
  ) {
    // A deleted chat's turn has nowhere to store its reply: its upstream call stops, wherever it runs.
    chats.onDeleted(({ chatId }) => void this.stopDeleted(chatId));
  }

  /** Stops the chat's running turn on whichever instance runs it; false when none runs. */
  async stop(key: ChatKey): Promise<boolean> {
    await this.chats.get(key);
    return this.live.stop(key.chatId) || (await this.relay.requestStop(key.chatId));
  }

  private async stopDeleted(chatId: string): Promise<void> {
    try {
      if (!this.live.stop(chatId)) await this.relay.requestStop(chatId);
    } catch (error) {
      this.logger.warn(`Could not stop the turn of deleted chat ${chatId}: ${String(error)}`);
    }
  }

  /**
   * The events to send a client that resumes: after `lastEventId`, the rest of that turn (its
   * final event alone when it has ended); without one, every event of the turn running now. Null
   * when nothing runs and no id was given.
   */
  async resume(
    key: ChatKey,
    lastEventId: LastEventId | undefined,
    signal: AbortSignal,
  ): Promise<AsyncIterable<StreamedTurnEvent> | null> {
    await this.chats.get(key);
    if (lastEventId === undefined) return this.followRunning(key, signal);
    const after = parseTurnEventId(lastEventId.value);
    if (!after) throw new UnknownLastEventIdError(lastEventId.field);
    const userMessage =
      after.userMessageId === null ? null : await this.repository.findMessage(key, after.userMessageId);
    if (after.userMessageId !== null && userMessage?.role !== 'user')
      throw new UnknownLastEventIdError(lastEventId.field);
    if (!this.live.hasSent(key.chatId, after)) throw new UnknownLastEventIdError(lastEventId.field);
    const followed =
      this.live.follow(key.chatId, after, signal) ??
      (this.relay.sharesEvents ? await this.relay.follow(key.chatId, after, after.index, signal) : null);
    if (followed) return this.untilFinal(key, after, userMessage, followed, signal);
    // One read of the reply: a turn of another instance may store it meanwhile.
    const { final, reply } = await this.endOf(key, after, userMessage);
    if (final) return only(final);
    if (!this.mayBeTurnOf(after, userMessage, reply)) throw new UnknownLastEventIdError(lastEventId.field);
    // Without shared events a turn that may still run elsewhere cannot be told from one that ended.
    if (await this.mayRunElsewhere(key.chatId, after)) throw new TurnElsewhereError();
    // It runs nowhere: a reply it stored before it let go of the chat, in the meantime, is its end.
    return only((await this.finalEventOf(key, after, userMessage)) ?? this.interrupted(after, userMessage));
  }

  /**
   * Whether another instance may run the turn: one runs a turn of the chat, not known to be
   * another. The chat's turn running here (the one instance that holds the chat) is not it.
   */
  private async mayRunElsewhere(chatId: string, turn: TurnId): Promise<boolean> {
    if (this.live.runs(chatId)) return false;
    const running = await this.relay.runningTurn(chatId);
    return running !== null && (running.turn === null || sameTurn(running.turn, turn));
  }

  private async followRunning(key: ChatKey, signal: AbortSignal): Promise<AsyncIterable<StreamedTurnEvent> | null> {
    const local = this.live.follow(key.chatId, null, signal);
    if (local) return local;
    // Another instance runs it: followed through the relay when it shares events.
    const running = await this.relay.runningTurn(key.chatId);
    if (!running) return null;
    if (!this.relay.sharesEvents || !running.turn) throw new TurnElsewhereError();
    const start = { ...running.turn, index: -1 };
    const relayed = await this.relay.follow(key.chatId, running.turn, -1, signal);
    const userMessage =
      start.userMessageId === null ? null : await this.repository.findMessage(key, start.userMessageId);
    return relayed && this.untilFinal(key, start, userMessage, relayed, signal);
  }

  /** The followed events; should they end without a final event (its instance is gone), the one storage tells. */
  private async *untilFinal(
    key: ChatKey,
    after: TurnPosition,
    userMessage: Message | null,
    events: AsyncIterable<StreamedTurnEvent>,
    signal: AbortSignal,
  ): AsyncGenerator<StreamedTurnEvent> {
    let last = after;
    for await (const event of events) {
      yield event;
      if (isFinal(event)) return;
      last = parseTurnEventId(event.id) ?? last;
    }
    if (signal.aborted) return;
    yield (await this.finalEventOf(key, last, userMessage)) ?? this.interrupted(last, userMessage);
  }

  private async finalEventOf(key: ChatKey, after: TurnPosition, userMessage: Message | null) {
    return (await this.endOf(key, after, userMessage)).final;
  }

  /**
   * How the turn ended, as its stream told it, and the message stored under its reply's id. A
   * completed reply is its end, also when an earlier attempt failed and a repeat (Idempotency-Key)
   * answered with it; else the failure this instance kept, or the one a turn that failed midway
   * recorded with its partial reply (on any instance); else the reply as stored (a stopped turn's).
   */
  private async endOf(
    key: ChatKey,
    after: TurnPosition,
    userMessage: Message | null,
  ): Promise<{ final: FinalTurnEvent | undefined; reply: Message | null }> {
    const reply = userMessage === null ? null : await this.repository.findMessage(key, after.replyId);
    const answers = reply !== null && reply.inReplyTo === userMessage?.id;
    const told = (message: Message): FinalTurnEvent => ({
      type: 'assistant_message',
      id: this.finalId(after),
      message,
    });
    if (answers && reply.status === 'completed') return { final: told(reply), reply };
    const failure = this.live.failureOf(key.chatId, after);
    if (failure) return { final: failure, reply };
    if (answers && reply.failure) {
      const recorded = recordedFailure(reply.failure, userMessage, reply);
      return { final: { type: 'failed', id: this.finalId(after), failure: recorded }, reply };
    }
    return { final: answers ? told(reply) : undefined, reply };
  }

  /**
   * Whether an id that nothing tells the end of may still name a turn of the chat. A turn that
   * failed before it stored its user message is known by its kept failure alone. Another names
   * its user message's reply: one that could have been named for it, and no other message.
   */
  private mayBeTurnOf(after: TurnPosition, userMessage: Message | null, stored: Message | null): boolean {
    return userMessage !== null && stored === null && couldNameReplyTo(after.replyId, userMessage.id);
  }

  private interrupted(after: TurnPosition, userMessage: Message | null): FinalTurnEvent {
    return { type: 'failed', id: this.finalId(after), failure: new TurnInterruptedError(userMessage) };
  }

  /** The id of a final event told after its turn ended: its place is no longer known (END). */
  private finalId(after: TurnPosition): string {
    const turn: TurnId = { userMessageId: after.userMessageId, replyId: after.replyId };
    return turnEventId(turn, END);
  }
}
