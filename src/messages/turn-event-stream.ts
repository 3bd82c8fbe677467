import type { Request } from 'express';
import { SseStream } from '../common/http/sse-stream';
import { MessageDto } from './dto/message.dto';
import { StreamedTurnEvent } from './turn';
import { turnProblem } from './turn-problems';

/** Writes a turn's event as the stream sends it: a message as a Message, a failure as an `error` problem. */
export function writeTurnEvent(stream: SseStream, event: StreamedTurnEvent, request: Request): void {
  switch (event.type) {
    case 'delta':
      return stream.send('delta', { content: event.content }, event.id);
    case 'failed':
      return stream.send('error', turnProblem(event.failure, request), event.id);
    default:
      return stream.send(event.type, MessageDto.from(event.message), event.id);
  }
}
