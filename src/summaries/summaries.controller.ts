import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiChatIdParam } from '../chats/chat-api.decorators';
import { ChatKey } from '../chats/chat';
import { ChatKeyParam } from '../chats/chat-key.decorator';
import {
  ApiProblemResponse,
  ApiValidationProblemResponse,
  retryAfterHeader,
} from '../common/problem-details/api-problem-response.decorator';
import { SummaryDto, SummaryQuery } from './dto/summary.dto';
import { SummariesService } from './summaries.service';

@ApiTags('summaries')
@Controller('chats/:chatId/summary')
export class SummariesController {
  constructor(private readonly summaries: SummariesService) {}

  @Get()
  @ApiOperation({
    summary: 'Summarize a chat: counts, highlights, topics, sentiment, and on request an LLM abstract',
    description:
      'Highlights are chosen by TF-IDF sentence scoring, topics are nouns and noun phrases by weighted frequency, ' +
      'sentiment is the mean of wink-nlp sentence scores (beyond ±0.1 positive or negative). An empty chat has a ' +
      'summary too. The abstract is written by the LLM and cached until the chat changes.',
  })
  @ApiChatIdParam()
  @ApiOkResponse({ type: SummaryDto })
  @ApiValidationProblemResponse('abstract: abstract must be a boolean value')
  @ApiProblemResponse(502, {
    description: 'The language model failed, or wrote no abstract (an empty answer is not cached)',
    type: 'urn:konko:problem:llm-failed',
    title: 'The language model failed',
    detail: 'The language model answered HTTP 500.',
  })
  @ApiProblemResponse(503, {
    description: 'The language model is unavailable',
    type: 'urn:konko:problem:llm-unavailable',
    detail: 'The language model answered HTTP 429.',
    headers: retryAfterHeader("Seconds to wait: the language model's own, when it said"),
  })
  @ApiProblemResponse(504, {
    description: 'The language model did not answer in time',
    type: 'urn:konko:problem:llm-timeout',
    detail: 'The language model did not answer within LLM_TIMEOUT_MS.',
  })
  async get(@ChatKeyParam() chat: ChatKey, @Query() query: SummaryQuery): Promise<SummaryDto> {
    return SummaryDto.from(await this.summaries.summarize(chat, { withAbstract: query.abstract === true }));
  }
}
