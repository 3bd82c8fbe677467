import type { Chat, ChatKey } from '../chats/chat';
import type { Message } from '../chats/message';
import type { DomainError } from '../common/errors/domain-error';
import type { LlmUsage } from '../llm/llm-provider';

/** What a client asks for: to send a message, or a new reply to a stored user message. */
export type TurnRequest = SendRequest | RegenerateRequest;

export interface SendRequest {
  kind: 'send';
  chat: ChatKey;
  content: string;
  /** The message the new one follows (null: a new first message); absent: the current branch's last. */
  parentId?: string | null;
  /** The request's Idempotency-Key, if it has one. */
  idempotencyKey?: string;
}

export interface RegenerateRequest {
  kind: 'regenerate';
  chat: ChatKey;
  /** A user message, or an assistant message (then the user message it answers). */
  messageId: string;
  idempotencyKey?: string;
}

/**
 * What an attempt records on its Idempotency-Key, for a repeat to resume from: its user message,
 * and the id its reply is stored under, so that a repeat finds a reply the attempt stored but
 * could not record, and never takes another request's reply for it.
 */
export type TurnProgress =
  | {
      /** The message it answers, stored (a regeneration's, or a send's after a repeat found it). */
      userMessage: Message;
      /** Absent in progress recorded by releases before branches, which recorded the bare message. */
      replyId?: string;
    }
  | {
      /**
       * A send records the id of its user message before it stores it, so that a repeat finds the
       * message whatever failed after it was stored, and never stores it twice.
       */
      userMessageId: string;
      replyId: string;
    };

/** A completed turn: the user message and the reply to it. */
export interface Turn {
  userMessage: Message;
  assistantMessage: Message;
}

/**
 * Names a turn: the user message it answers and the id its reply is stored under (chosen before
 * the reply exists). A turn that failed before it held a user message has none.
 */
export interface TurnId {
  userMessageId: string | null;
  replyId: string;
}

/**
 * An event of a turn that holds its chat, as its stream sends it and a resume sends it again;
 * `id` names its place in the turn (turn-event-ids.ts). The last is `assistant_message` (a
 * stopped turn's too, with its incomplete reply) or `failed`.
 */
export type StreamedTurnEvent =
  | { type: 'user_message'; id: string; message: Message }
  | { type: 'delta'; id: string; content: string }
  | { type: 'assistant_message'; id: string; message: Message }
  /** `failure`: a DomainError, or whatever else went wrong (shown as a 500). */
  | { type: 'failed'; id: string; failure: unknown };

/** A turn's last event. */
export type FinalTurnEvent = Extract<StreamedTurnEvent, { type: 'assistant_message' | 'failed' }>;

export const isFinal = (event: StreamedTurnEvent): event is FinalTurnEvent =>
  event.type === 'assistant_message' || event.type === 'failed';

/**
 * What a turn reports as it goes; a streamed response forwards each one as it happens. The first
 * is always `admitted`: the checks that need no lock passed (else the turn threw before any
 * event), and a repeat of a completed turn says so with `replayed`.
 */
export type TurnEvent = { type: 'admitted'; replayed: boolean } | StreamedTurnEvent;

export interface TurnOptions {
  onEvent?: (event: TurnEvent) => void;
  /**
   * Called once the turn is admitted with how to stop it; the HTTP edge stops it when its client
   * leaves (with CLIENT_DISCONNECT=stop only: by default a turn outlives its connection).
   */
  whenClientLeaves?: (stop: () => void) => void;
  /** The id of the request that runs the turn, for its log lines. */
  requestId?: string;
}

/** The user message a turn answers, as it stands once the turn holds the chat's lock. */
export interface BegunTurn {
  /** The chat as the turn sees it under the lock. */
  chat: Chat;
  userMessage: Message;
  /** A reply an earlier attempt with the same Idempotency-Key stored but could not record. */
  storedReply: Message | undefined;
  /**
   * The id this attempt's reply is stored under, recorded on its Idempotency-Key beforehand; the
   * stored reply's own when an earlier attempt stored it.
   */
  replyId: string;
  /**
   * This send stored the first message of a chat without a title. Nothing between storing it and
   * saying so can fail, so the turn titles the chat however it ends.
   */
  firstOfUntitledChat: boolean;
}

/** What the upstream gave: the reply's text so far, and how the call ended. */
export interface StreamedReply {
  content: string;
  /** When the call began, by `performance.now()`. */
  startedAt: number;
  /** Set when the call completed. */
  finish?: { model: string; usage: LlmUsage | null; reason?: string };
  /** Set when it did not: what it failed with. */
  error?: unknown;
  /** Set when the reply reached MAX_REPLY_LENGTH, and the call was given up. */
  cut?: true;
}

/** How a turn ended under the lock: with its messages, or with the failure to report. */
export type TurnOutcome = { kind: 'completed'; turn: Turn } | { kind: 'failed'; failure: DomainError };
