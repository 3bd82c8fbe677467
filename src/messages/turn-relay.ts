import type { ChatLock } from '../chats/chat.repository';
import type { StreamedTurnEvent, TurnId } from './turn';

/** A turn this instance runs, as the relay carries it to the other instances. */
export interface RelayedTurn {
  /** The turn now has a name (its user message is known): it can be found and followed by it. */
  identify(turn: TurnId): void;
  publish(event: StreamedTurnEvent): void;
  /** The turn let go of its chat; every event was published. It follows a final event at once. */
  end(): void;
}

/** What the relay knows of a chat's running turn: which it is, when it knows. */
export interface RunningElsewhere {
  turn: TurnId | null;
}

/**
 * How the instances that share a chat's storage reach a turn that one of them runs: a stop
 * requested on any instance reaches the one running the turn, and with shared events any instance
 * can follow it for a resume. The storage module binds it: in memory there is one instance and
 * nothing to relay; with a database, stops go through it; with REDIS_URL, stops and events go
 * through Redis. A relay through a service of its own (Redis) rejects what a request waits on
 * (all but `begin`) with RelayUnavailableError, promptly, while that service is unreachable.
 */
export abstract class TurnRelay {
  /** Whether another instance can follow a turn's events; without, a resume elsewhere gets 409. */
  abstract readonly sharesEvents: boolean;

  /**
   * The service the relay goes through besides the chat storage (`redis`), which readiness checks
   * under this name with {@link checkReachable}; null when there is none.
   */
  readonly dependency: string | null = null;

  /** Resolves while the relay reaches the other instances; else rejects, saying why. */
  async checkReachable(): Promise<void> {}

  /** This instance runs a turn of the chat under `lock`: until `end`, a stop requested elsewhere calls `stop`. */
  abstract begin(lock: ChatLock, stop: () => void): RelayedTurn;

  /** Asks the instance that runs the chat's turn to stop it; false when no instance runs one. */
  abstract requestStop(chatId: string): Promise<boolean>;

  /** Whether some instance runs a turn of the chat (null: none does). */
  abstract runningTurn(chatId: string): Promise<RunningElsewhere | null>;

  /**
   * The turn's events after `afterIndex` (its final event alone once it has ended), then live until
   * its final event, or until the instance that ran it is gone (then it ends without one) or `signal`
   * aborts; null when the relay knows nothing of the turn.
   */
  abstract follow(
    chatId: string,
    turn: TurnId,
    afterIndex: number,
    signal: AbortSignal,
  ): Promise<AsyncIterable<StreamedTurnEvent> | null>;
}

/** One instance, memory storage: nothing to relay to. */
export class LocalTurnRelay extends TurnRelay {
  readonly sharesEvents = false;

  begin(): RelayedTurn {
    return { identify: () => undefined, publish: () => undefined, end: () => undefined };
  }

  async requestStop(): Promise<boolean> {
    return false;
  }

  async runningTurn(): Promise<RunningElsewhere | null> {
    return null;
  }

  async follow(): Promise<null> {
    return null;
  }
}
