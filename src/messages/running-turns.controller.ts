import { Body, Controller, Get, Headers, Post, Query, Req, Res, UseFilters } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiHeader,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ChatKey } from '../chats/chat';
import { ApiChatIdParam } from '../chats/chat-api.decorators';
import { ChatKeyParam } from '../chats/chat-key.decorator';
import { SseStream } from '../common/http/sse-stream';
import {
  ApiJsonBodyProblemResponses,
  ApiProblemResponse,
  ApiValidationProblemResponse,
} from '../common/problem-details/api-problem-response.decorator';
import { ApiNoBody, ApiUnknownFieldResponse, NoFieldsPipe } from '../common/validation/no-fields.pipe';
import { httpConfig, HttpConfig } from '../config/http.config';
import { ResumeStreamQuery } from './dto/resume-stream.query';
import { TURN_EVENT_STREAM_EXAMPLE } from './dto/turn-events.dto';
import { RelayUnavailableError } from './message-errors';
import { LastEventId, RunningTurnsService } from './running-turns.service';
import { writeTurnEvent } from './turn-event-stream';
import { TurnProblemFilter } from './turn-problems';

/** Stops and resumes that need another instance, while Redis is unreachable. */
const ApiRedisUnavailableResponse = () =>
  ApiProblemResponse(503, {
    description: 'With REDIS_URL: Redis is unreachable, and no turn of the chat runs on this instance',
    type: 'urn:konko:problem:redis-unavailable',
    title: new RelayUnavailableError().title,
    detail: new RelayUnavailableError().message,
  });

/** A chat's running turn: stop it, or resume its stream, whichever instance runs it. */
@ApiTags('messages')
@Controller('chats/:chatId')
@UseFilters(TurnProblemFilter)
export class RunningTurnsController {
  constructor(
    private readonly turns: RunningTurnsService,
    @httpConfig.inject() private readonly http: HttpConfig,
  ) {}

  @Post('stop')
  @ApiOperation({
    summary: "Stop the chat's running turn",
    description:
      'Stops the turn that is generating a reply in the chat, on whichever instance runs it, within a second: the ' +
      'upstream request is aborted and what was generated is stored with `status: "incomplete"`. Its streams end ' +
      'with that message as the final `assistant_message` event, and a waiting plain request gets 201 with it. ' +
      'Turns still waiting for the chat run as usual. Takes no body (or `{}`): a field in one is a 422.',
  })
  @ApiNoBody()
  @ApiJsonBodyProblemResponses()
  @ApiChatIdParam()
  @ApiAcceptedResponse({ description: 'A turn was generating; it stops' })
  @ApiNoContentResponse({ description: 'No turn was generating' })
  @ApiUnknownFieldResponse()
  @ApiRedisUnavailableResponse()
  async stop(
    @ChatKeyParam() chat: ChatKey,
    @Body(NoFieldsPipe) _body: void,
    @Query(NoFieldsPipe) _query: void,
    @Res({ passthrough: true }) response: Response,
  ): Promise<void> {
    response.status((await this.turns.stop(chat)) ? 202 : 204);
  }

  @Get('stream')
  @ApiOperation({
    summary: "Resume the stream of the chat's turn",
    description:
      'With `Last-Event-ID` (or `?lastEventId=`): the events of that turn after that id, then live until the turn ' +
      'ends; if the turn has ended, its final event only (`assistant_message`, or `error`). Without one: every ' +
      'event of the turn running now. Events are those of sending a message, each with an `id:` line. An id this ' +
      'service did not give out for this chat gets 422 (checked whether or not a turn runs).',
  })
  @ApiChatIdParam()
  // No example, as for `?lastEventId=`.
  @ApiHeader({
    name: 'Last-Event-ID',
    required: false,
    description: 'The `id` of the last event the client received, as its `id:` line gave it (opaque)',
  })
  @ApiOkResponse({
    description: "The turn's events as server-sent events, each with an `id:` line",
    content: { 'text/event-stream': { schema: { type: 'string' }, example: TURN_EVENT_STREAM_EXAMPLE } },
  })
  @ApiNoContentResponse({ description: 'No turn runs, and no Last-Event-ID was given' })
  @ApiProblemResponse(409, {
    description: 'The turn runs on another instance, and without REDIS_URL its events stay there',
    type: 'urn:konko:problem:turn-elsewhere',
    detail:
      "This chat's turn runs on another instance of the service, and its events can only be resumed there " +
      '(instances share them through Redis when REDIS_URL is set). Retry, or read the messages once it ends.',
  })
  @ApiValidationProblemResponse('Last-Event-ID: not an event id this service gave out for this chat')
  @ApiRedisUnavailableResponse()
  async stream(
    @ChatKeyParam() chat: ChatKey,
    @Headers('last-event-id') header: string | undefined,
    @Query() query: ResumeStreamQuery,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const lastEventId: LastEventId | undefined =
      query.lastEventId !== undefined
        ? { value: query.lastEventId, field: 'lastEventId' }
        : header !== undefined
          ? { value: header, field: 'Last-Event-ID' }
          : undefined;
    const clientLeft = new AbortController();
    response.once('close', () => clientLeft.abort());
    const events = await this.turns.resume(chat, lastEventId, clientLeft.signal);
    if (!events) {
      response.status(204).end();
      return;
    }
    const stream = new SseStream(response, this.http.ssePingIntervalMs);
    stream.open();
    try {
      for await (const event of events) {
        if (stream.isClosed) break;
        writeTurnEvent(stream, event, request);
      }
    } finally {
      stream.close();
    }
  }
}
