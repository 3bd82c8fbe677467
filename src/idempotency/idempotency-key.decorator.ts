import { applyDecorators, createParamDecorator, ExecutionContext } from '@nestjs/common';
import { ApiHeader, DECORATORS, type HeaderObject } from '@nestjs/swagger';
import type { Request } from 'express';
import { RequestValidationError } from '../common/errors/domain-error';
import { ApiProblemResponse, retryAfterHeader } from '../common/problem-details/api-problem-response.decorator';

export const IDEMPOTENCY_KEY_HEADER = 'Idempotency-Key';
/** Set on a response that repeats the first outcome of its Idempotency-Key. */
export const IDEMPOTENT_REPLAYED_HEADER = 'Idempotent-Replayed';
const MAX_KEY_LENGTH = 255;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/** The request's Idempotency-Key, or undefined; a malformed one is a 422 naming the header. */
export const IdempotencyKeyHeader = createParamDecorator((_: unknown, context: ExecutionContext) => {
  const request = context.switchToHttp().getRequest<Request>();
  if (request.headers['idempotency-key'] === undefined) return undefined;
  // Node joins a repeated header into "a, b" in `headers`; `headersDistinct` (built on first use,
  // for every header) keeps each line.
  const values = request.headersDistinct['idempotency-key']!;
  const invalid = (message: string) => new RequestValidationError([{ field: IDEMPOTENCY_KEY_HEADER, message }]);
  if (values.length > 1) throw invalid('send the header once');
  const [value] = values;
  if (value.length === 0 || value.length > MAX_KEY_LENGTH) throw invalid(`must be 1–${MAX_KEY_LENGTH} characters`);
  if (!PRINTABLE_ASCII.test(value)) throw invalid('must be printable ASCII');
  return value;
});

/**
 * Adds `Idempotent-Replayed` to the route's success responses, declared by the decorators below
 * it (decorators apply bottom up): a route with none yet is a mistake, found when it loads.
 */
const ApiReplayedHeader = () => (_target: object, key: string | symbol, descriptor: PropertyDescriptor) => {
  const responses: Record<string, { headers?: Record<string, HeaderObject> }> =
    Reflect.getMetadata(DECORATORS.API_RESPONSE, descriptor.value) ?? {};
  const successes = Object.keys(responses).filter((status) => status.startsWith('2'));
  if (successes.length === 0) {
    throw new Error(`ApiIdempotencyKey must stand above the success responses of ${String(key)}`);
  }
  const header: HeaderObject = {
    description: 'Present, as `true`, when the response repeats the first outcome of its Idempotency-Key',
    schema: { type: 'string', enum: ['true'] },
  };
  const withHeader = Object.fromEntries(
    successes.map((status) => {
      const response = responses[status];
      return [status, { ...response, headers: { ...response.headers, [IDEMPOTENT_REPLAYED_HEADER]: header } }];
    }),
  );
  Reflect.defineMetadata(DECORATORS.API_RESPONSE, { ...responses, ...withHeader }, descriptor.value);
};

/**
 * Documents the header as the decorator above checks it, the 409 of a repeat while the first
 * request still runs, and the header of a replayed response. Put it above the success responses.
 */
export const ApiIdempotencyKey = (what: string) =>
  applyDecorators(
    ApiHeader({
      name: IDEMPOTENCY_KEY_HEADER,
      required: false,
      schema: { type: 'string', minLength: 1, maxLength: MAX_KEY_LENGTH, pattern: PRINTABLE_ASCII.source },
      description:
        `Makes retrying safe: a repeat with the same key and body returns the first outcome (${what}) ` +
        `without doing the work again, marked \`${IDEMPOTENT_REPLAYED_HEADER}: true\`. Another body → 422; ` +
        'while the first request still runs → 409. Keys are scoped to the caller, the route and the chat, and ' +
        `expire after IDEMPOTENCY_TTL (24 h by default). A key is 1–${MAX_KEY_LENGTH} printable ASCII characters, ` +
        'sent once; else 422.',
    }),
    ApiProblemResponse(409, {
      description: 'The first request with this Idempotency-Key is still running',
      type: 'urn:konko:problem:idempotency-key-in-use',
      detail:
        'The first request with this Idempotency-Key is still running; repeat it after it ends to get its outcome.',
      headers: retryAfterHeader('Always 1: repeat the request a second later'),
    }),
    ApiReplayedHeader(),
  );
