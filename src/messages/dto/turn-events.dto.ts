import { ApiProperty } from '@nestjs/swagger';

/** `data` of a `delta` event. */
export class DeltaEventDto {
  @ApiProperty({ description: 'The next piece of the reply', example: 'Start at Belém ' })
  content: string;
}

export const TURN_EVENT_STREAM_EXAMPLE = [
  'id: 0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b.0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d.0',
  'event: user_message',
  'data: {"id":"0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b","chatId":"0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e","seq":1,"role":"user","content":"What should I see in Lisbon in one day?","status":"completed","inReplyTo":null,"parentId":null,"model":null,"usage":null,"createdAt":"2026-11-25T09:31:10.000Z"}',
  '',
  ': ping',
  '',
  'id: 0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b.0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d.1',
  'event: delta',
  'data: {"content":"Start at Belém "}',
  '',
  'id: 0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b.0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d.2',
  'event: delta',
  'data: {"content":"for the tower."}',
  '',
  'id: 0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b.0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d.3',
  'event: assistant_message',
  'data: {"id":"0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d","chatId":"0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e","seq":2,"role":"assistant","content":"Start at Belém for the tower.","status":"completed","inReplyTo":"0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b","parentId":"0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b","model":"gpt-4.1-mini","usage":{"promptTokens":412,"completionTokens":8},"createdAt":"2026-11-25T09:31:12.000Z"}',
  '',
  '',
].join('\n');

export const TURN_EVENT_STREAM_DESCRIPTION =
  'Server-sent events, each `data:` a JSON object: `user_message` (a Message: the stored user message, first), ' +
  '`delta` (a DeltaEventDto: the next piece of the reply, in order), then `assistant_message` (a Message: the stored ' +
  'reply, whose content is the deltas joined; last on success) or `error` (a problem document, last on failure: a ' +
  'ReplyFailedProblemDto once the user message is stored, with any partial reply, stored with status `incomplete`, ' +
  'as `assistantMessage`; a plain one for a turn stopped while it waited, before it stored anything). ' +
  '`: ping` comments are sent while the turn waits for the chat or the first token. Every event has an `id:` line; ' +
  'a client that loses the stream resumes it with `GET /chats/{chatId}/stream` and `Last-Event-ID`. The turn does ' +
  'not depend on its connection: a client that disconnects leaves it running, and its reply is stored whole ' +
  '(with CLIENT_DISCONNECT=stop, the upstream call is aborted and what was generated is stored as incomplete).';
