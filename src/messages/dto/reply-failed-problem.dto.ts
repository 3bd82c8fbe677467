import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ProblemDto } from '../../common/problem-details/problem.dto';
import { MessageDto } from './message.dto';

/** An upstream failure after the user message was stored: it carries that message. */
export class ReplyFailedProblemDto extends ProblemDto {
  @ApiProperty({ type: MessageDto, description: 'The stored user message; nothing the user sent is lost' })
  userMessage: MessageDto;

  @ApiPropertyOptional({
    type: MessageDto,
    description:
      'The partial reply, stored with `status: "incomplete"`, when the turn failed after the model had begun ' +
      'to answer (the upstream broke off mid-stream, or the service had to stop); absent otherwise',
  })
  assistantMessage?: MessageDto;
}
