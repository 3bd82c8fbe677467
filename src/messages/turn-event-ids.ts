import { isUUID } from 'class-validator';
import type { TurnId } from './turn';

/**
 * Where an event sits: its turn, and its place in it (0 for the first). The final event of a turn
 * that ended before a resume asked for it sits at END: its place among the turn's events is no
 * longer known there, and it must not take the id of another event.
 */
export interface TurnPosition extends TurnId {
  index: number;
}

export const END = Number.POSITIVE_INFINITY;
const NO_USER_MESSAGE = '-';

/**
 * An event's id, `<user message id>.<reply id>.<index>` (or `.end`): opaque to clients, and enough
 * for any instance to find the turn again (its reply in storage) after the turn's events are gone.
 */
export const turnEventId = ({ userMessageId, replyId }: TurnId, index: number): string =>
  `${userMessageId ?? NO_USER_MESSAGE}.${replyId}.${index === END ? 'end' : index}`;

/** A name for a turn that failed before it held a user message: its one event still needs an id. */
export const unnamedTurn = (): TurnId => ({ userMessageId: null, replyId: crypto.randomUUID() });

/** The position an event id names; null for anything this service could not have given out. */
export function parseTurnEventId(id: string): TurnPosition | null {
  const parts = id.split('.');
  if (parts.length !== 3) return null;
  const [user, replyId, index] = parts;
  if (!(user === NO_USER_MESSAGE || isUUID(user)) || !isUUID(replyId) || !/^(0|[1-9]\d{0,8}|end)$/.test(index)) {
    return null;
  }
  return {
    userMessageId: user === NO_USER_MESSAGE ? null : user.toLowerCase(),
    replyId: replyId.toLowerCase(),
    index: index === 'end' ? END : Number(index),
  };
}

/** The millisecond a UUIDv7 was made in; null for another UUID. */
const v7Time = (id: string): number | null => (id[14] === '7' ? parseInt(id.slice(0, 8) + id.slice(9, 13), 16) : null);

/** How far the clocks of instances may disagree, for ids made on one and compared on another. */
const CLOCK_SKEW_MS = 5 * 60_000;

/**
 * Whether this service could have named `replyId` for a reply to `userMessageId`: it names a
 * reply with a UUIDv7 under the chat's lock, with or after its user message, so never earlier
 * (give or take the skew of the clocks of the instances that made them).
 */
export function couldNameReplyTo(replyId: string, userMessageId: string): boolean {
  const reply = v7Time(replyId);
  const user = v7Time(userMessageId);
  return reply !== null && (user === null || reply >= user - CLOCK_SKEW_MS);
}

export const sameTurn = (a: TurnId, b: TurnId): boolean =>
  a.replyId === b.replyId && a.userMessageId === b.userMessageId;

/** A turn's name as one string, for maps and keys. */
export const turnKeyOf = ({ userMessageId, replyId }: TurnId): string =>
  `${userMessageId ?? NO_USER_MESSAGE}.${replyId}`;
