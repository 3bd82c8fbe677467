import { applyDecorators, Type } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, ApiResponseOptions, getSchemaPath } from '@nestjs/swagger';
import { STATUS_CODES } from 'node:http';
import { NOT_JSON_DETAIL } from '../http/require-json-body.middleware';
import { BODY_PARSER_DETAILS, PROBLEM_CONTENT_TYPE } from './problem-details.filter';
import { ProblemDto, ValidationProblemDto } from './problem.dto';

type ResponseHeaders = Record<
  string,
  { description: string; schema: { type: 'integer' | 'string'; minimum?: number } }
>;

/** One problem document a response can carry, as its example shows it. */
export interface ProblemExample {
  /** The problem document's type slug; plain HTTP problems use `about:blank`. */
  type?: string;
  /** The example's title, where it is not the description (typed problems) or the status's phrase (plain ones). */
  title?: string;
  detail: string;
  schema?: Type<ProblemDto>;
  extensions?: Record<string, unknown>;
}

/** One of several problems a status answers: a named example of its own. */
export interface ProblemVariant extends ProblemExample {
  summary: string;
}

interface ResponseOptions {
  description: string;
  headers?: ResponseHeaders;
}

interface VariantsResponseOptions extends ResponseOptions {
  /** Each problem the status answers, by example name; the schema is any of theirs. */
  variants: Record<string, ProblemVariant>;
}

export type ProblemResponseOptions = (ResponseOptions & ProblemExample) | VariantsResponseOptions;

/** `Retry-After` on a problem response: whole seconds to wait. */
export const retryAfterHeader = (description: string): ResponseHeaders => ({
  'Retry-After': { description, schema: { type: 'integer', minimum: 0 } },
});

/**
 * Where the client stands under RATE_LIMIT, on every counted response; an operation with a 429 of
 * its own (a busy chat's) declares them on it too.
 */
export const rateLimitHeaders = (remaining: string): ResponseHeaders => ({
  'X-RateLimit-Limit': { description: 'RATE_LIMIT', schema: { type: 'integer', minimum: 1 } },
  'X-RateLimit-Remaining': { description: remaining, schema: { type: 'integer', minimum: 0 } },
  'X-RateLimit-Reset': { description: 'Seconds until the window ends', schema: { type: 'integer', minimum: 0 } },
});

const exampleOf = (status: number, problem: ProblemExample, typedTitle: string) => ({
  type: problem.type ?? 'about:blank',
  title: problem.title ?? (problem.type ? typedTitle : (STATUS_CODES[status] ?? 'Error')),
  status,
  detail: problem.detail,
  instance: '/chats/0198f2c4-5b1e-7c3a-9d2e-6f1a2b3c4d5e',
  ...problem.extensions,
});

const schemasOf = (options: ProblemResponseOptions): Type<ProblemDto>[] => [
  ...new Set(
    'variants' in options
      ? Object.values(options.variants).map((variant) => variant.schema ?? ProblemDto)
      : [options.schema ?? ProblemDto],
  ),
];

/**
 * One `application/problem+json` error response, with its schema and an example (with variants:
 * an example each, and the schema any of theirs): what `ApiProblemResponse` declares, or a global
 * response of the document.
 */
export function problemResponse(status: number, options: ProblemResponseOptions): ApiResponseOptions {
  const schemas = schemasOf(options).map((schema) => ({ $ref: getSchemaPath(schema) }));
  const media =
    'variants' in options
      ? {
          // Not oneOf: problem schemas are open, so a document of a wider one matches ProblemDto too.
          schema: schemas.length === 1 ? schemas[0] : { anyOf: schemas },
          examples: Object.fromEntries(
            Object.entries(options.variants).map(([name, variant]) => [
              name,
              { summary: variant.summary, value: exampleOf(status, variant, variant.summary) },
            ]),
          ),
        }
      : { schema: schemas[0], example: exampleOf(status, options, options.description) };
  return {
    status,
    description: options.description,
    headers: options.headers,
    content: { [PROBLEM_CONTENT_TYPE]: media },
  };
}

/** Documents one `application/problem+json` error response (see {@link problemResponse}). */
export const ApiProblemResponse = (status: number, options: ProblemResponseOptions) =>
  applyDecorators(ApiExtraModels(...schemasOf(options)), ApiResponse(problemResponse(status, options)));

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
    ApiProblemResponse(400, {
      description: 'Malformed JSON, or not UTF-8',
      variants: {
        malformedJson: { summary: 'Malformed JSON', detail: BODY_PARSER_DETAILS['entity.parse.failed'] },
        notUtf8: { summary: 'Bytes that are not UTF-8', detail: BODY_PARSER_DETAILS['entity.not.utf8'] },
      },
    }),
    ApiProblemResponse(413, { description: 'Body too large', detail: BODY_PARSER_DETAILS['entity.too.large'] }),
    ApiProblemResponse(415, {
      description: 'Not JSON, or not UTF-8',
      variants: {
        notJson: { summary: 'Not application/json', detail: NOT_JSON_DETAIL },
        notUtf8: { summary: 'A charset other than UTF-8', detail: BODY_PARSER_DETAILS['charset.unsupported'] },
      },
    }),
  );
