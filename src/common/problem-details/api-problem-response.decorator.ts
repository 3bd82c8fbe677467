import { applyDecorators, Type } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, ApiResponseOptions, getSchemaPath } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';
import { PROBLEM_CONTENT_TYPE } from './problem-details.filter';
import { ProblemDto, ValidationProblemDto } from './problem.dto';

type ResponseHeaders = Record<
  string,
  { description: string; schema: { type: 'integer' | 'string'; minimum?: number } }
>;

export interface ProblemResponseOptions {
  description: string;
  /** The problem document's type slug; plain HTTP problems use `about:blank`. */
  type?: string;
  /** The example's title, where it is not the description (typed problems) or the status's phrase (plain ones). */
  title?: string;
  detail: string;
  schema?: Type<ProblemDto>;
  extensions?: Record<string, unknown>;
  headers?: ResponseHeaders;
}

/** `Retry-After` on a problem response: whole seconds to wait. */
export const retryAfterHeader = (description: string): ResponseHeaders => ({
  'Retry-After': { description, schema: { type: 'integer', minimum: 0 } },
});

/**
 * One `application/problem+json` error response, with its schema and an example: what
 * `ApiProblemResponse` declares, or a global response of the document.
 */
export function problemResponse(status: number, options: ProblemResponseOptions): ApiResponseOptions {
  return {
    status,
    description: options.description,
    headers: options.headers,
    content: {
      [PROBLEM_CONTENT_TYPE]: {
        schema: { $ref: getSchemaPath(options.schema ?? ProblemDto) },
        example: {
          type: options.type ?? 'about:blank',
          title: options.title ?? (options.type ? options.description : (STATUS_CODES[status] ?? 'Error')),
          status,
          detail: options.detail,
          instance: '/chats/0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
          ...options.extensions,
        },
      },
    },
  };
}

/** Documents one `application/problem+json` error response (see {@link problemResponse}). */
export const ApiProblemResponse = (status: number, options: ProblemResponseOptions) =>
  applyDecorators(ApiExtraModels(options.schema ?? ProblemDto), ApiResponse(problemResponse(status, options)));

/** 422 with per-field `errors[]`; `detail` is `field: message`, as the service writes it. */
export const ApiValidationProblemResponse = (detail = 'content: content must not be blank') => {
  const [field, message] = detail.split(/: (.*)/s);
  return ApiProblemResponse(422, {
    description: 'Request validation failed',
    type: 'urn:konko:problem:validation-failed',
    detail,
    schema: ValidationProblemDto,
    extensions: { errors: [{ field, message }] },
  });
};

/** The errors any route with a JSON body can answer before it reaches the handler. */
export const ApiJsonBodyProblemResponses = () =>
  applyDecorators(
    ApiProblemResponse(400, { description: 'Malformed JSON', detail: 'The request body is not valid JSON.' }),
    ApiProblemResponse(413, {
      description: 'Body too large',
      detail: 'The request body is larger than the service accepts.',
    }),
    ApiProblemResponse(415, { description: 'Not JSON', detail: 'Request bodies must be application/json.' }),
  );
