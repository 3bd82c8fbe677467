import { Injectable } from '@nestjs/common';
import { limitsConfig, LimitsConfig } from '../config/limits.config';
import { ChatBusyError, ShuttingDownError } from './message-errors';

/**
 * Why a turn was stopped before its end, its signal's `reason`: its client left (with
 * CLIENT_DISCONNECT=stop), shutdown's grace ran out, or a client asked (POST …/stop).
 */
export type TurnStopReason = 'client-left' | 'shutting-down' | 'stopped';

/** A turn let in: it holds one of its chat's waiting places until it holds the chat, or is released. */
export interface Admission {
  /**
   * The turn's one stop signal: it aborts, with a {@link TurnStopReason} as its reason, when the
   * turn must stop (a client asked, shutdown's grace period ran out, or with CLIENT_DISCONNECT=stop
   * its client left). The upstream call
   * listens to it directly, so a turn makes no other signal of its own.
   */
  readonly signal: AbortSignal;
  /** Stops the turn, unless it was stopped already. */
  stop(reason: TurnStopReason): void;
  /** The turn holds its chat now: shutdown gives it the grace to finish instead of ending it at once. */
  holdsChat(): void;
  release(): void;
}

/** The reason the turn's signal was aborted with, or undefined while it runs. */
export const stopReasonOf = (signal: AbortSignal): TurnStopReason | undefined =>
  signal.aborted ? (signal.reason as TurnStopReason) : undefined;

const TURN_TIME_SMOOTHING = 0.2;

/**
 * Backpressure and draining for turns in this instance: at most MAX_PENDING_TURNS_PER_CHAT turns
 * wait for one chat (beside the one that holds it), and on shutdown no new turn starts, those
 * waiting for their chat end at once (their clients retry elsewhere rather than start a reply that
 * the grace may cut), and the running ones get SHUTDOWN_GRACE_MS to finish before they are stopped.
 */
@Injectable()
export class TurnAdmission {
  private readonly waitingByChat = new Map<string, number>();
  /** One controller per admitted turn rather than one shared signal that every turn would listen to. */
  private readonly admitted = new Set<AbortController>();
  /** The admitted turns that do not hold their chat yet. */
  private readonly waiting = new Set<AbortController>();
  private draining = false;
  private idle: (() => void) | undefined;
  /** Smoothed duration of a turn, for Retry-After. */
  private turnSeconds = 1;

  constructor(@limitsConfig.inject() private readonly limits: LimitsConfig) {}

  admit(chatId: string): Admission {
    if (this.draining) throw new ShuttingDownError();
    const waiting = this.waitingByChat.get(chatId) ?? 0;
    if (waiting >= this.limits.maxPendingTurnsPerChat) {
      // Room comes once the turn holding the chat and every one before this ends.
      throw new ChatBusyError(waiting, Math.max(1, Math.ceil(this.turnSeconds * (waiting + 1))));
    }
    this.waitingByChat.set(chatId, waiting + 1);
    const stop = new AbortController();
    this.admitted.add(stop);
    this.waiting.add(stop);
    const leaveLine = () => {
      if (!this.waiting.delete(stop)) return;
      const left = (this.waitingByChat.get(chatId) ?? 1) - 1;
      if (left === 0) this.waitingByChat.delete(chatId);
      else this.waitingByChat.set(chatId, left);
    };
    const startedAt = performance.now();
    return {
      signal: stop.signal,
      stop: (reason) => {
        if (!stop.signal.aborted) stop.abort(reason);
      },
      holdsChat: leaveLine,
      release: () => {
        leaveLine();
        if (!this.admitted.delete(stop)) return;
        const seconds = (performance.now() - startedAt) / 1000;
        this.turnSeconds += TURN_TIME_SMOOTHING * (seconds - this.turnSeconds);
        if (this.admitted.size === 0) this.idle?.();
      },
    };
  }

  /**
   * Refuses new turns and ends those waiting for their chat, waits up to `graceMs` for the running
   * ones, then stops the rest (they keep what was generated as incomplete) and waits for them to
   * wind up.
   */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    for (const turn of this.waiting) turn.abort('shutting-down' satisfies TurnStopReason);
    const allDone = new Promise<void>((resolve) => {
      this.idle = resolve;
      if (this.admitted.size === 0) resolve();
    });
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([allDone, graceOver]);
    clearTimeout(timer);
    for (const turn of this.admitted) if (!turn.signal.aborted) turn.abort('shutting-down' satisfies TurnStopReason);
    await allDone;
  }
}
