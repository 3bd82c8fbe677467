import { setTimeout as delay } from 'node:timers/promises';

export interface UntilOptions {
  /** How many times `check` is asked before giving up. */
  attempts?: number;
  /** The pause between two attempts, in ms, so that a poll of a database or the service does not hammer it. */
  pauseMs?: number;
}

/**
 * Asks `check` until it answers something truthy, and resolves with that answer; throws, naming
 * `what`, once `attempts` answers were falsy. For what a test cannot be told of by an event of its
 * own (a fake's deferred): a state of the service seen from outside, such as a metric or a row.
 * The bound is on attempts, not time: a loaded machine makes the wait longer, never the result
 * different.
 */
export async function until<T>(
  check: () => Promise<T> | T,
  what: string,
  { attempts = 500, pauseMs = 10 }: UntilOptions = {},
): Promise<NonNullable<T>> {
  let last: T | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    last = await check();
    if (last) return last as NonNullable<T>;
    if (attempt < attempts) await delay(pauseMs);
  }
  throw new Error(`Gave up waiting for ${what} after ${attempts} attempts (the last answer: ${String(last)})`);
}
