import { ApiProperty } from '@nestjs/swagger';

/** RFC 9457 problem document: the body of every error response. */
export class ProblemDto {
  @ApiProperty({
    example: 'urn:konko:problem:chat-not-found',
    description: 'URI naming the problem type; `about:blank` for plain HTTP errors',
  })
  type: string;

  @ApiProperty({ example: 'Chat not found' })
  title: string;

  @ApiProperty({ type: 'integer', example: 404 })
  status: number;

  @ApiProperty({ example: 'No chat has the id 0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e.' })
  detail: string;

  @ApiProperty({
    example: '/chats/0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
    description: 'The request path, without its query',
  })
  instance: string;
}

export class FieldErrorDto {
  @ApiProperty({ example: 'content', description: 'Path of the offending field (`metadata.plan`, `cursor` …)' })
  field: string;

  @ApiProperty({ example: 'content must not be blank' })
  message: string;
}

export class ValidationProblemDto extends ProblemDto {
  @ApiProperty({ type: [FieldErrorDto] })
  errors: FieldErrorDto[];
}
