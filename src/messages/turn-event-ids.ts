import { isUUID } from 'class-validator';
import type { TurnId } from './turn';

/** Where an event sits: its turn, and its place in it (0 for the first). */
export interface TurnPosition extends TurnId {
  index: number;
}

const NO_USER_MESSAGE = '-';

/**
 * An event's id, `<user message id>.<reply id>.<index>`: opaque to clients, and enough for any
 * instance to find the turn again (its reply in storage) after the turn's events are gone.
 */
export const turnEventId = ({ userMessageId, replyId }: TurnId, index: number): string =>
  `${userMessageId ?? NO_USER_MESSAGE}.${replyId}.${index}`;

/** The position an event id names; null for anything this service could not have given out. */
export function parseTurnEventId(id: string): TurnPosition | null {
  const parts = id.split('.');
  if (parts.length !== 3) return null;
  const [user, replyId, index] = parts;
  if (!(user === NO_USER_MESSAGE || isUUID(user)) || !isUUID(replyId) || !/^(0|[1-9]\d{0,8})$/.test(index)) {
    return null;
  }
  return {
    userMessageId: user === NO_USER_MESSAGE ? null : user.toLowerCase(),
    replyId: replyId.toLowerCase(),
    index: Number(index),
  };
}

export const sameTurn = (a: TurnId, b: TurnId): boolean =>
  a.replyId === b.replyId && a.userMessageId === b.userMessageId;

/** A turn's name as one string, for maps and keys. */
export const turnKeyOf = ({ userMessageId, replyId }: TurnId): string =>
  `${userMessageId ?? NO_USER_MESSAGE}.${replyId}`;
