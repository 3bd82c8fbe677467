import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiChatIdParam } from '../chats/chat-api.decorators';
import { ChatIdPipe } from '../chats/chat-id.pipe';
import {
  ApiJsonBodyProblemResponses,
  ApiProblemResponse,
  ApiValidationProblemResponse,
} from '../common/problem-details/api-problem-response.decorator';
import { ListMessagesQuery } from './dto/list-messages.query';
import { MessageDto, MessagePageDto, TurnDto } from './dto/message.dto';
import { ReplyFailedProblemDto } from './dto/reply-failed-problem.dto';
import { SendMessageDto } from './dto/send-message.dto';
import { MessagesService } from './messages.service';

const USER_MESSAGE_EXAMPLE = {
  id: '0198f2c5-0a11-7f00-8a1b-2c3d4e5f6a7b',
  chatId: '0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
  seq: 1,
  role: 'user',
  content: 'What should I see in Lisbon in one day?',
  status: 'completed',
  inReplyTo: null,
  model: null,
  usage: null,
  createdAt: '2026-11-25T09:31:10.000Z',
};

const upstreamProblem = (status: number, description: string, type: string, detail: string, retryAfter = false) =>
  ApiProblemResponse(status, {
    description,
    type: `urn:konko:problem:${type}`,
    detail: `${detail} Your message was stored as message 1; send another message to try again.`,
    schema: ReplyFailedProblemDto,
    extensions: { userMessage: USER_MESSAGE_EXAMPLE },
    headers: retryAfter
      ? { 'Retry-After': { description: 'Seconds to wait, when the upstream said', schema: { type: 'integer' } } }
      : undefined,
  });

@ApiTags('messages')
@Controller('chats/:chatId/messages')
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @Post()
  @ApiOperation({
    summary: 'Send a message and get the reply',
    description:
      "Stores the user message, asks the LLM with the chat's system prompt and history, stores and returns the reply. " +
      'Turns of one chat are served one at a time, first come first served.',
  })
  @ApiChatIdParam()
  @ApiCreatedResponse({ type: TurnDto })
  @ApiValidationProblemResponse()
  @ApiJsonBodyProblemResponses()
  @upstreamProblem(502, 'The language model failed', 'llm-failed', 'The language model answered HTTP 500.')
  @upstreamProblem(
    503,
    'The language model is unavailable',
    'llm-unavailable',
    'The language model answered HTTP 429.',
    true,
  )
  @upstreamProblem(
    504,
    'The language model did not answer in time',
    'llm-timeout',
    'The language model did not answer within LLM_TIMEOUT_MS.',
  )
  async send(@Param('chatId', ChatIdPipe) chatId: string, @Body() body: SendMessageDto): Promise<TurnDto> {
    const turn = await this.messages.sendMessage(chatId, body.content);
    return { userMessage: MessageDto.from(turn.userMessage), assistantMessage: MessageDto.from(turn.assistantMessage) };
  }

  @Get()
  @ApiOperation({ summary: "List a chat's messages by seq, oldest first" })
  @ApiChatIdParam()
  @ApiOkResponse({ type: MessagePageDto })
  @ApiValidationProblemResponse('limit: limit must not be greater than 1000')
  async list(@Param('chatId', ChatIdPipe) chatId: string, @Query() query: ListMessagesQuery): Promise<MessagePageDto> {
    const page = await this.messages.listMessages(chatId, query);
    return { data: page.data.map(MessageDto.from), nextCursor: page.nextCursor };
  }
}
