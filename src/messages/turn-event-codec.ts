import { Message, messageFromJson } from '../chats/message';
import { DomainError, ErrorKind } from '../common/errors/domain-error';
import { RelayedTurnFailure, TurnFailure } from './message-errors';
import { StreamedTurnEvent } from './turn';

/** A failure as JSON: what its problem document needs, and the messages it carries. */
interface EncodedFailure {
  kind?: ErrorKind;
  code?: string;
  title?: string;
  detail?: string;
  retryAfterSeconds?: number;
  userMessage?: unknown;
  partialReply?: unknown;
}

type EncodedTurnEvent =
  | { type: 'user_message' | 'assistant_message'; id: string; message: unknown }
  | { type: 'delta'; id: string; content: string }
  | { type: 'failed'; id: string; failure: EncodedFailure };

/** A turn's event as JSON, for instances that follow it from elsewhere (the relay). */
export function encodeTurnEvent(event: StreamedTurnEvent): EncodedTurnEvent {
  if (event.type !== 'failed') return event;
  const { failure } = event;
  if (!(failure instanceof DomainError)) return { type: 'failed', id: event.id, failure: {} };
  const carried = failure instanceof TurnFailure ? failure : undefined;
  return {
    type: 'failed',
    id: event.id,
    failure: {
      kind: failure.kind,
      code: failure.code,
      title: failure.title,
      detail: failure.message,
      retryAfterSeconds: failure.retryAfterSeconds,
      userMessage: carried?.userMessage ?? undefined,
      partialReply: carried?.partialReply ?? undefined,
    },
  };
}

const messageOrNull = (json: unknown): Message | null => (json ? messageFromJson(json) : null);

export function decodeTurnEvent(encoded: EncodedTurnEvent): StreamedTurnEvent {
  switch (encoded.type) {
    case 'delta':
      return encoded;
    case 'failed': {
      const { kind, code, title, detail, retryAfterSeconds, userMessage, partialReply } = encoded.failure;
      const failure =
        kind && code && title
          ? new RelayedTurnFailure(
              kind,
              code,
              title,
              detail ?? title,
              retryAfterSeconds,
              messageOrNull(userMessage),
              messageOrNull(partialReply),
            )
          : // Not a domain failure: the edge shows it as a 500, as it would have on its own instance.
            new Error('The turn failed unexpectedly on the instance that ran it.');
      return { type: 'failed', id: encoded.id, failure };
    }
    default:
      return { type: encoded.type, id: encoded.id, message: messageFromJson(encoded.message) };
  }
}
