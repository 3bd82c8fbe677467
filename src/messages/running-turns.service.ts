import { Injectable } from '@nestjs/common';
import { ChatKey } from '../chats/chat';
import { ChatRepository } from '../chats/chat.repository';
import { ChatsService } from '../chats/chats.service';
import { Message } from '../chats/message';
import { LiveTurns } from './live-turns';
import { TurnElsewhereError, TurnInterruptedError, UnknownLastEventIdError } from './message-errors';
import { FinalTurnEvent, isFinal, StreamedTurnEvent, TurnId } from './turn';
import { couldNameReplyTo, END, parseTurnEventId, turnEventId, TurnPosition } from './turn-event-ids';
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
  constructor(
    private readonly chats: ChatsService,
    private readonly repository: ChatRepository,
    private readonly live: LiveTurns,
    private readonly relay: TurnRelay,
  ) {}

  /** Stops the chat's running turn on whichever instance runs it; false when none runs. */
  async stop(key: ChatKey): Promise<boolean> {
    await this.chats.get(key);
    return this.live.stop(key.chatId) || (await this.relay.requestStop(key.chatId));
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
    const followed =
      this.live.follow(key.chatId, after, signal) ??
      (this.relay.sharesEvents ? await this.relay.follow(key.chatId, after, after.index, signal) : null);
    if (followed) return this.untilFinal(key, after, userMessage, followed, signal);
    const final = await this.finalEventOf(key, after, userMessage);
    if (final) return only(final);
    if (!(await this.mayBeTurnOf(key, after, userMessage))) throw new UnknownLastEventIdError(lastEventId.field);
    // Without shared events a turn that may still run elsewhere cannot be told from one that ended.
    if (await this.relay.runningTurn(key.chatId)) throw new TurnElsewhereError();
    return only(this.interrupted(after, userMessage));
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

  /**
   * An ended turn's final event, as its stream sent it: the failure this instance kept, or its
   * reply from storage.
   */
  private async finalEventOf(
    key: ChatKey,
    after: TurnPosition,
    userMessage: Message | null,
  ): Promise<FinalTurnEvent | undefined> {
    // A turn that failed midway stored its partial reply as well: it ended with the failure.
    const failure = this.live.failureOf(key.chatId, after);
    if (failure) return failure;
    const reply = userMessage === null ? null : await this.repository.findMessage(key, after.replyId);
    if (reply && reply.inReplyTo === userMessage?.id) {
      return { type: 'assistant_message', id: this.finalId(after), message: reply };
    }
    return undefined;
  }

  /**
   * Whether an id that nothing tells the end of may still name a turn of the chat. A turn that
   * failed before it stored its user message is known by its kept failure alone. Another names
   * its user message's reply: one that could have been named for it, and no other message.
   */
  private async mayBeTurnOf(key: ChatKey, after: TurnPosition, userMessage: Message | null): Promise<boolean> {
    if (userMessage === null || !couldNameReplyTo(after.replyId, userMessage.id)) return false;
    // The reply, stored under its user message, would have been its final event.
    return (await this.repository.findMessage(key, after.replyId)) === null;
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
