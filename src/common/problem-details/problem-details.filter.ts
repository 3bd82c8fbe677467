import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { STATUS_CODES } from 'node:http';
import { DomainError, ErrorKind } from '../errors/domain-error';
import { messageOf } from '../errors/error-message';
import { loggableUrl } from '../http/loggable-url';
import { problemTypeUri } from './problem-type';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  [extension: string]: unknown;
}

const STATUS_BY_KIND: Record<ErrorKind, number> = {
  unauthorized: 401,
  'not-found': 404,
  invalid: 422,
  conflict: 409,
  'upstream-timeout': 504,
  'upstream-unavailable': 503,
  'upstream-failed': 502,
  unavailable: 503,
  'too-many': 429,
  'client-closed': 499,
};

/** Errors raised by Express's body parser carry a `type` and a client status. */
interface BodyParserError {
  type: string;
  status: number;
  expose?: boolean;
  message: string;
}

/** The detail of each body-parser error, by its `type`; the service's own body checks raise them too. */
export const BODY_PARSER_DETAILS: Record<string, string> = {
  'entity.parse.failed': 'The request body is not valid JSON.',
  'entity.not.utf8': 'The request body is not valid UTF-8.',
  'entity.too.large': 'The request body is larger than the service accepts.',
  'encoding.unsupported': 'The request body uses an unsupported content encoding.',
  'charset.unsupported': 'Request bodies must be UTF-8: send no charset parameter, or charset=utf-8.',
  'request.aborted': 'The request was aborted while its body was being read.',
};

function isBodyParserError(error: unknown): error is BodyParserError {
  return (
    error instanceof Error &&
    typeof (error as Partial<BodyParserError>).type === 'string' &&
    typeof (error as Partial<BodyParserError>).status === 'number'
  );
}

/**
 * A body that failed to decompress (gzip, deflate, br): body-parser marks zlib's own error 400
 * with no `type` (every error of its own has one), and zlib's errors carry an `errno`.
 */
function isUnreadableBody(error: unknown): boolean {
  const { status, type, errno } = error as { status?: unknown; type?: unknown; errno?: unknown };
  return error instanceof Error && status === 400 && type === undefined && typeof errno === 'number';
}

/**
 * Express error middleware for after the body parsers. Nest would turn the parser's SyntaxError
 * into a BadRequestException holding only the parser's words; passed on as a plain Error with its
 * `type` and `status`, it is answered like every other body-parser error.
 */
export function passOnBodyParserErrors(
  error: unknown,
  _request: Request,
  _response: Response,
  next: NextFunction,
): void {
  if (error instanceof SyntaxError && isBodyParserError(error)) {
    next(Object.assign(new Error(error.message), { type: error.type, status: error.status }));
    return;
  }
  next(error);
}

/** A plain HTTP failure's problem document: `about:blank`, titled by its status. */
export const plainProblem = (status: number, detail: string, instance: string): ProblemDocument => ({
  type: 'about:blank',
  title: STATUS_CODES[status] ?? 'Error',
  status,
  detail,
  instance,
});

/** Describes any thrown value as an RFC 9457 problem document (status and members). */
export function toProblem(error: unknown, instance: string): ProblemDocument {
  const plain = (status: number, detail: string) => plainProblem(status, detail, instance);

  if (error instanceof DomainError) {
    return {
      type: problemTypeUri(error.code),
      title: error.title,
      status: STATUS_BY_KIND[error.kind],
      detail: error.message,
      instance,
      ...error.extensions(),
    };
  }
  if (error instanceof HttpException) {
    const status = error.getStatus();
    if (status >= 500) return plain(status, 'The service failed to handle the request.');
    const response = error.getResponse();
    const message =
      typeof response === 'string' ? response : ((response as { message?: unknown }).message ?? error.message);
    return plain(status, Array.isArray(message) ? message.join('; ') : String(message));
  }
  if (isBodyParserError(error) && error.status >= 400 && error.status < 500) {
    return plain(error.status, BODY_PARSER_DETAILS[error.type] ?? error.message);
  }
  if (isUnreadableBody(error)) {
    return plain(400, 'The request body could not be read as its Content-Encoding says it is encoded.');
  }
  return plain(500, 'The service failed to handle the request. It has been logged.');
}

const logger = new Logger('ProblemDetails');

/** The request's path as sent, without the query: a query can hold what users wrote (a search's words). */
export function pathOf(request: Pick<Request, 'url'> & { originalUrl?: string }): string {
  const url = request.originalUrl ?? request.url;
  const queryAt = url.indexOf('?');
  return queryAt === -1 ? url : url.slice(0, queryAt);
}

/** The problem document for an error met while serving `request`; unexpected failures are logged. */
export function problemForRequest(error: unknown, request: Request): ProblemDocument {
  const path = pathOf(request);
  const problem = toProblem(error, path);
  // Nest's 404 for an unknown route names the URL, query and all.
  if (problem.status === 404 && problem.detail === `Cannot ${request.method} ${request.originalUrl}`) {
    problem.detail = `Cannot ${request.method} ${path}`;
  }
  if (problem.status < 500) return problem;
  const req = { id: request.id };
  if (!(error instanceof DomainError)) {
    logger.error({ msg: `${request.method} ${loggableUrl(request)} failed`, req, err: error });
  } else if (error.cause !== undefined) {
    // A known failure whose detail leaves out its cause (a driver's words): the logs keep it.
    logger.warn({ msg: `${request.method} ${loggableUrl(request)}: ${messageOf(error)}`, req });
  }
  return problem;
}

/**
 * Every error, from any layer, leaves the service as `application/problem+json`. A feature whose
 * errors carry more than their message extends it and its `problemFor`.
 */
@Catch()
export class ProblemDetailsFilter implements ExceptionFilter {
  catch(error: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<Request>();
    const response = http.getResponse<Response>();
    const problem = this.problemFor(error, request);

    if (response.headersSent) {
      response.end();
      return;
    }
    if (error instanceof DomainError && error.retryAfterSeconds !== undefined) {
      response.setHeader('Retry-After', String(error.retryAfterSeconds));
    }
    if (error instanceof DomainError && error.kind === 'unauthorized') {
      response.setHeader('WWW-Authenticate', 'Bearer realm="konko"');
    }
    response.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
  }

  protected problemFor(error: unknown, request: Request): ProblemDocument {
    return problemForRequest(error, request);
  }
}
