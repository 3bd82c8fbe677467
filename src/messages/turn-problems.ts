import { Catch } from '@nestjs/common';
import type { Request } from 'express';
import {
  ProblemDetailsFilter,
  ProblemDocument,
  problemForRequest,
} from '../common/problem-details/problem-details.filter';
import { MessageDto } from './dto/message.dto';
import { TurnFailure } from './message-errors';

/**
 * The problem document of a turn's failure, with the messages it had stored as the API shows them
 * (`userMessage`, and `assistantMessage` for a partial reply), so the client knows nothing was lost.
 */
export function turnProblem(error: unknown, request: Request): ProblemDocument {
  const problem = problemForRequest(error, request);
  if (!(error instanceof TurnFailure) || !error.userMessage) return problem;
  return {
    ...problem,
    userMessage: MessageDto.from(error.userMessage),
    ...(error.partialReply ? { assistantMessage: MessageDto.from(error.partialReply) } : {}),
  };
}

/** The messages routes' errors as problem documents, turn failures with their stored messages. */
@Catch()
export class TurnProblemFilter extends ProblemDetailsFilter {
  protected override problemFor(error: unknown, request: Request): ProblemDocument {
    return turnProblem(error, request);
  }
}
