import { applyDecorators, Body, Controller, Get, Param, Post, Query, Req, Res, UseFilters } from '@nestjs/common';
import {
  ApiCreatedResponse,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiBody,
  ApiParam,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ApiChatIdParam } from '../chats/chat-api.decorators';
import { ChatKey } from '../chats/chat';
import { MessageNotFoundError } from '../chats/chat-errors';
import { ChatKeyParam } from '../chats/chat-key.decorator';
import { ParseIdPipe } from '../common/ids/parse-id.pipe';
import { ApiNoBody, NoFieldsPipe } from '../common/validation/no-fields.pipe';
import {
  ApiJsonBodyProblemResponses,
  ApiProblemResponse,
  ApiValidationProblemResponse,
  rateLimitHeaders,
  retryAfterHeader,
} from '../common/problem-details/api-problem-response.decorator';
import { ValidationProblemDto } from '../common/problem-details/problem.dto';
import { onClientLeft } from '../common/http/client-left';
import { SseStream } from '../common/http/sse-stream';
import { httpConfig, HttpConfig } from '../config/http.config';
import {
  ApiIdempotencyKey,
  IDEMPOTENT_REPLAYED_HEADER,
  IdempotencyKeyHeader,
} from '../idempotency/idempotency-key.decorator';
import { ListMessagesQuery } from './dto/list-messages.query';
import {
  ASSISTANT_MESSAGE_EXAMPLE,
  MessageDto,
  MessagePageDto,
  TurnDto,
  USER_MESSAGE_EXAMPLE,
} from './dto/message.dto';
import { ReplyFailedProblemDto } from './dto/reply-failed-problem.dto';
import { SEND_MESSAGE_EXAMPLES, SendMessageDto } from './dto/send-message.dto';
import { SendMessageQuery } from './dto/send-message.query';
import { DeltaEventDto, TURN_EVENT_STREAM_DESCRIPTION, TURN_EVENT_STREAM_EXAMPLE } from './dto/turn-events.dto';
import { ShuttingDownError } from './message-errors';
import { MessagesService } from './messages.service';
import { isFinal, TurnRequest } from './turn';
import { turnEventId, unnamedTurn } from './turn-event-ids';
import { writeTurnEvent } from './turn-event-stream';
import { turnProblem, TurnProblemFilter } from './turn-problems';

const EVENT_STREAM = 'text/event-stream';

/** `?stream=` decides when given; otherwise the Accept header does. */
function wantsEventStream(request: Request, query: SendMessageQuery): boolean {
  return query.stream ?? request.accepts(['application/json', EVENT_STREAM]) === EVENT_STREAM;
}

/** `{messageId}` path parameters: a non-UUID is an unknown message (404). */
const MessageIdPipe = new ParseIdPipe((id) => new MessageNotFoundError(id));

/** A turn's failure after its user message was stored: the problem carries that message. */
const replyFailed = (type: string, detail: string, extensions: Record<string, unknown> = {}) => ({
  type: `urn:konko:problem:${type}`,
  detail: `${detail} Your message was stored as message 1; send another message to try again.`,
  schema: ReplyFailedProblemDto,
  extensions: { userMessage: USER_MESSAGE_EXAMPLE, ...extensions },
});

/** What a turn stores of a reply the model broke off. */
const PARTIAL_REPLY_EXAMPLE = {
  ...ASSISTANT_MESSAGE_EXAMPLE,
  content: 'Start at Belém for the tower and pastéis,',
  status: 'incomplete',
  usage: null,
};

/** What sending and regenerating answer alike: the turn, plain or streamed, and how it can fail. */
const ApiTurnResponses = () =>
  applyDecorators(
    ApiExtraModels(DeltaEventDto, MessageDto, ReplyFailedProblemDto),
    ApiCreatedResponse({ type: TurnDto, description: 'The user message and the stored reply (plain JSON)' }),
    ApiResponse({
      status: 200,
      description: TURN_EVENT_STREAM_DESCRIPTION,
      content: { [EVENT_STREAM]: { schema: { type: 'string' }, example: TURN_EVENT_STREAM_EXAMPLE } },
    }),
    // In place of the rate limit's 429 every route documents, which it names.
    ApiProblemResponse(429, {
      description:
        'Too many turns already wait on this chat (`chat-busy`), or the caller is over RATE_LIMIT (`about:blank`, ' +
        'as on every route)',
      type: 'urn:konko:problem:chat-busy',
      title: 'Too many turns wait on this chat',
      detail: '32 turns already wait on this chat; send this message again after the time in Retry-After.',
      headers: {
        ...retryAfterHeader('Seconds to wait: until the chat should have room, or the rate limit lets the client in'),
        ...rateLimitHeaders('Requests left in the window: 0 when over RATE_LIMIT'),
      },
    }),
    ApiProblemResponse(502, {
      description:
        'The language model failed (`llm-failed`); a reply it had begun is stored as incomplete and sent as ' +
        '`assistantMessage`',
      variants: {
        failed: {
          summary: 'The language model failed',
          ...replyFailed('llm-failed', 'The language model answered HTTP 500.'),
        },
        brokeOff: {
          summary: 'The language model failed mid-reply',
          title: 'The language model failed',
          ...replyFailed('llm-failed', 'The language model reported an error while streaming its reply.', {
            assistantMessage: PARTIAL_REPLY_EXAMPLE,
          }),
        },
      },
    }),
    ApiProblemResponse(503, {
      description:
        'The language model is unavailable (`llm-unavailable`), or this instance is shutting down ' +
        '(`shutting-down`). A turn refused before it began is a plain problem, without `userMessage` (nothing was ' +
        'stored); one stopped at the end of the grace period carries its messages. With a database, a turn whose ' +
        "instance stalled past its chat's lock while another turn took the chat, or whose database went away " +
        'under it, stores no reply (`turn-interrupted`, with the user message it stored, if any); one for which ' +
        'the storage failed as it took the chat stores nothing (`turn-interrupted`, without `userMessage`)',
      headers: retryAfterHeader(
        "Seconds to wait: 1 while shutting down or after turn-interrupted; the language model's own, when it said",
      ),
      variants: {
        unavailable: {
          summary: 'The language model is unavailable',
          ...replyFailed('llm-unavailable', 'The language model answered HTTP 429.'),
        },
        shuttingDown: {
          summary: 'The service is shutting down',
          type: 'urn:konko:problem:shutting-down',
          detail: new ShuttingDownError().message,
        },
        interrupted: {
          summary: "The turn's instance stalled, and another turn took the chat",
          title: 'The turn ended without a reply',
          type: 'urn:konko:problem:turn-interrupted',
          detail:
            'The turn ended without a stored reply. Your message was stored as message 1; regenerate it to try again.',
          schema: ReplyFailedProblemDto,
          extensions: { userMessage: USER_MESSAGE_EXAMPLE },
        },
      },
    }),
    ApiProblemResponse(504, {
      description: 'The language model did not answer in time',
      ...replyFailed('llm-timeout', 'The language model did not answer within LLM_TIMEOUT_MS.'),
    }),
  );

@ApiTags('messages')
@Controller('chats/:chatId/messages')
@UseFilters(TurnProblemFilter)
export class MessagesController {
  constructor(
    private readonly messages: MessagesService,
    @httpConfig.inject() private readonly http: HttpConfig,
  ) {}

  @Post()
  @ApiOperation({
    summary: 'Send a message and get the reply',
    description:
      "Stores the user message, asks the LLM with the chat's system prompt and the message's branch as history, " +
      'stores and returns the reply. Without `parentId` the message follows the current branch; with one it ' +
      "continues that message (an edit is the new text sent with the edited message's `parentId`). " +
      'Turns of one chat are served one at a time, first come first served. ' +
      'With `Accept: text/event-stream` or `?stream=true` the reply is streamed as server-sent events (200); ' +
      'errors found before the turn starts (404, 409, 422, 429) are plain problem responses either way.',
  })
  @ApiChatIdParam()
  @ApiBody({ type: SendMessageDto, examples: SEND_MESSAGE_EXAMPLES })
  @ApiIdempotencyKey('the same stored messages')
  @ApiTurnResponses()
  @ApiValidationProblemResponse('parentId: no message of this chat has the id 0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b')
  @ApiJsonBodyProblemResponses()
  async send(
    @ChatKeyParam() chat: ChatKey,
    @Body() body: SendMessageDto,
    @Query() query: SendMessageQuery,
    @IdempotencyKeyHeader() idempotencyKey: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const turn: TurnRequest = { kind: 'send', chat, content: body.content, parentId: body.parentId, idempotencyKey };
    await this.runTurn(turn, query, request, response);
  }

  @Post(':messageId/regenerate')
  @ApiOperation({
    summary: 'Generate a new reply to a user message',
    description:
      'A new reply to that user message (or to the user message an assistant `messageId` answers), generated ' +
      'with the branch up to it as context and stored as a new child of it, beside the earlier replies; it ' +
      "becomes the chat's current message. Takes no body (or `{}`). Streaming, `Idempotency-Key`, backpressure " +
      'and upstream errors work as for sending; `userMessage` is the existing user message.',
  })
  // Above the chat's 404, which it replaces: one status, one example.
  @ApiProblemResponse(404, {
    description: 'Chat or message not found (`chat-not-found`, `message-not-found`)',
    type: 'urn:konko:problem:message-not-found',
    detail: 'No message of this chat has the id 0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b.',
  })
  @ApiChatIdParam()
  @ApiParam({ name: 'messageId', type: String, format: 'uuid', example: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b' })
  @ApiNoBody()
  @ApiIdempotencyKey('the same stored reply')
  @ApiTurnResponses()
  @ApiProblemResponse(422, {
    description:
      'The reply answers no user message (`reply-answers-no-message`: an imported chat may open with a reply, or ' +
      'have two in a row), or request validation failed (`validation-failed`)',
    title: 'The reply answers no user message',
    type: 'urn:konko:problem:reply-answers-no-message',
    detail:
      'Message 0198f2c5-1b22-7f00-9c2d-3e4f5a6b7c8d is a reply that answers no user message, so there is nothing ' +
      'to answer again. Regenerate a reply to a user message, or send a new message.',
    schema: ValidationProblemDto,
    extensions: { errors: [{ field: 'messageId', message: 'a reply that answers no user message' }] },
  })
  @ApiJsonBodyProblemResponses()
  async regenerate(
    @ChatKeyParam() chat: ChatKey,
    @Param('messageId', MessageIdPipe) messageId: string,
    @Body(NoFieldsPipe) _body: void,
    @Query() query: SendMessageQuery,
    @IdempotencyKeyHeader() idempotencyKey: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    await this.runTurn({ kind: 'regenerate', chat, messageId, idempotencyKey }, query, request, response);
  }

  /**
   * Runs the turn and answers it plain, or as a stream that opens once the turn is admitted. By
   * default the turn outlives its connection: a client that leaves can resume (GET …/stream), and
   * the reply is stored whole; with CLIENT_DISCONNECT=stop, leaving stops the turn.
   */
  private async runTurn(turn: TurnRequest, query: SendMessageQuery, request: Request, response: Response) {
    const options = {
      requestId: String(request.id),
      whenClientLeaves:
        this.http.clientDisconnect === 'stop' ? (stop: () => void) => onClientLeft(response, stop) : undefined,
    };
    if (!wantsEventStream(request, query)) {
      const done = await this.messages.runTurn(turn, {
        ...options,
        onEvent: (event) => {
          if (event.type === 'admitted' && event.replayed) response.setHeader(IDEMPOTENT_REPLAYED_HEADER, 'true');
        },
      });
      if (!response.destroyed) response.status(201).json(TurnDto.from(done));
      return;
    }
    // What fails before the turn is admitted is a plain problem response.
    const stream = new SseStream(response, this.http.ssePingIntervalMs);
    let ended = false;
    try {
      await this.messages.runTurn(turn, {
        ...options,
        onEvent: (event) => {
          if (event.type === 'admitted') {
            if (event.replayed) response.setHeader(IDEMPOTENT_REPLAYED_HEADER, 'true');
            return stream.open();
          }
          ended = isFinal(event);
          writeTurnEvent(stream, event, request);
        },
      });
    } catch (error) {
      if (!stream.isOpen) throw error;
      // Defensive: the stream still ends with an error event.
      if (!ended) stream.send('error', turnProblem(error, request), turnEventId(unnamedTurn(), 0));
    } finally {
      stream.close();
    }
  }

  @Get()
  @ApiOperation({
    summary: "List a chat's messages: its current branch, root first, or every message",
    description:
      'The current branch (the path from the root to `currentMessageId`) by default; `?branch=all` lists every ' +
      "message of every branch by seq, for clients that draw the tree. Each list rejects the other's cursors. " +
      "A current-branch cursor keeps to the branch its first page listed, even if the chat's current branch " +
      'changes meanwhile, so the pages of one walk form one path; list again without a cursor for the new one.',
  })
  @ApiChatIdParam()
  @ApiOkResponse({ type: MessagePageDto })
  @ApiValidationProblemResponse('limit: limit must not be greater than 1000')
  async list(@ChatKeyParam() chat: ChatKey, @Query() query: ListMessagesQuery): Promise<MessagePageDto> {
    const page = await this.messages.listMessages(chat, query);
    return { data: page.data.map(MessageDto.from), nextCursor: page.nextCursor };
  }
}
