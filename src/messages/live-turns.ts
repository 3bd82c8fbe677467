import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import type { ChatLock } from '../chats/chat.repository';
import { FinalTurnEvent, isFinal, StreamedTurnEvent, TurnId } from './turn';
import { sameTurn, turnEventId, turnKeyOf, TurnPosition, unnamedTurn } from './turn-event-ids';
import { RelayedTurn, TurnRelay } from './turn-relay';

type Unnamed<E> = E extends unknown ? Omit<E, 'id'> : never;
/** An event before it is named by its place in the turn. */
export type UnnamedTurnEvent = Unnamed<StreamedTurnEvent>;

/** A turn this instance runs, from when it holds its chat's lock until it lets go of it. */
export interface RunningTurn {
  /** Names the turn once its user message is known; every event after carries an id from it. */
  identify(turn: TurnId): void;
  /**
   * Names the event by its place in the turn (sets its `id`: pass a new object), keeps it, and
   * hands it to the turn's own stream and the streams that follow it.
   */
  emit(event: UnnamedTurnEvent): void;
}

interface Follower {
  push(event: StreamedTurnEvent): void;
  end(): void;
}

interface Live {
  turn: TurnId | null;
  ended: boolean;
  events: StreamedTurnEvent[];
  followers: Set<Follower>;
  stop: () => void;
  relayed: RelayedTurn;
}

/** Failures are kept this long after their turn, for resumes; a reply is read from storage. */
const FAILURES_KEPT_MS = 60 * 60_000;
/** Kept by chat: a turn that failed before it had a user message names nothing the chat holds. */
const failureKey = (chatId: string, turn: TurnId): string => `${chatId}/${turnKeyOf(turn)}`;

/**
 * The turns this instance runs, one per chat at most (the chat's lock): their events, kept while
 * they run for the streams that resume them, and how to stop them. A turn's events are dropped
 * when it ends; a resume of an ended turn gets its final event, the failure kept here (bounded)
 * or else the reply from storage. The relay carries stops and events to and from other instances.
 */
@Injectable()
export class LiveTurns {
  private readonly running = new Map<string, Live>();
  private readonly failures = new LRUCache<string, FinalTurnEvent>({ max: 10_000, ttl: FAILURES_KEPT_MS });

  constructor(private readonly relay: TurnRelay) {}

  /**
   * Runs `work`, the turn that holds `lock`, as this instance's running turn of the chat: `stop`
   * stops it, and its events go to `onEvent`, to its followers and to the relay. A failure, as
   * `work`'s outcome or thrown, becomes the turn's `failed` event.
   */
  async run<T extends { kind: string; failure?: unknown }>(
    lock: ChatLock,
    stop: () => void,
    onEvent: (event: StreamedTurnEvent) => void,
    work: (turn: RunningTurn) => Promise<T>,
  ): Promise<T> {
    const relayed = this.relay.begin(lock, stop);
    const live: Live = { turn: null, ended: false, events: [], followers: new Set(), stop, relayed };
    this.running.set(lock.chatId, live);
    const emit = (unnamed: UnnamedTurnEvent) => {
      // A turn that failed before it held a user message still names its one event.
      live.turn ??= unnamedTurn();
      // Named in place: a copy of each event cost more than the rest of emitting it.
      const event = unnamed as StreamedTurnEvent;
      event.id = turnEventId(live.turn, live.events.length);
      live.events.push(event);
      relayed.publish(event);
      for (const follower of live.followers) follower.push(event);
      if (event.type === 'failed') this.failures.set(failureKey(lock.chatId, live.turn), event);
      onEvent(event);
    };
    const turn: RunningTurn = {
      identify: (id) => {
        live.turn = id;
        relayed.identify(id);
      },
      emit,
    };
    try {
      const outcome = await work(turn);
      if (outcome.kind === 'failed') emit({ type: 'failed', failure: outcome.failure });
      return outcome;
    } catch (error) {
      emit({ type: 'failed', failure: error });
      throw error;
    } finally {
      live.ended = true;
      if (this.running.get(lock.chatId) === live) this.running.delete(lock.chatId);
      relayed.end();
      for (const follower of live.followers) follower.end();
    }
  }

  /** Whether a turn of the chat runs here. */
  runs(chatId: string): boolean {
    return this.running.has(chatId);
  }

  /** Stops the chat's turn running here; false when none runs here. */
  stop(chatId: string): boolean {
    const live = this.running.get(chatId);
    live?.stop();
    return live !== undefined;
  }

  /** False for a place past the events the chat's turn running here has sent: no id it gave out names it. */
  hasSent(chatId: string, after: TurnPosition): boolean {
    const live = this.running.get(chatId);
    return !live?.turn || !sameTurn(live.turn, after) || after.index < live.events.length;
  }

  /**
   * Follows the chat's turn running here: its events after `after` (every one when null), then
   * live until it ends. Null when no turn of the chat runs here, or another than `after` names.
   */
  follow(chatId: string, after: TurnPosition | null, signal: AbortSignal): AsyncIterable<StreamedTurnEvent> | null {
    const live = this.running.get(chatId);
    if (!live || (after && !(live.turn && sameTurn(live.turn, after)))) return null;
    return followLive(live, after ? after.index + 1 : 0, signal);
  }

  /**
   * The one event of a turn that failed before it held its chat (stopped while it waited, say):
   * named and kept like any failure, so that a resume from its id tells it again.
   */
  failedWhileWaiting(chatId: string, failure: unknown): FinalTurnEvent {
    const turn = unnamedTurn();
    const event: FinalTurnEvent = { type: 'failed', id: turnEventId(turn, 0), failure };
    this.failures.set(failureKey(chatId, turn), event);
    return event;
  }

  /** The failure an ended turn of the chat reported on this instance, while it is kept. */
  failureOf(chatId: string, turn: TurnId): FinalTurnEvent | undefined {
    return this.failures.get(failureKey(chatId, turn));
  }
}

/** The events from `from` on, then each as it comes, until the final one, the turn's end or `signal`. */
async function* followLive(live: Live, from: number, signal: AbortSignal): AsyncGenerator<StreamedTurnEvent> {
  // Taken at the first read: what was emitted before is in the copy, what comes after is pushed.
  const queue = live.events.slice(from);
  let wake: (() => void) | undefined;
  const follower: Follower = {
    push: (event) => {
      queue.push(event);
      wake?.();
    },
    end: () => wake?.(),
  };
  const stop = () => wake?.();
  live.followers.add(follower);
  signal.addEventListener('abort', stop);
  try {
    for (;;) {
      for (let event = queue.shift(); event; event = queue.shift()) {
        yield event;
        if (isFinal(event)) return;
      }
      if (live.ended || signal.aborted) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    live.followers.delete(follower);
    signal.removeEventListener('abort', stop);
  }
}
