import { UnsupportedMediaTypeException } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import typeis from 'type-is';

/** The one media type of request bodies: no `+json` type either (JSON Merge Patch means other rules). */
export const JSON_MEDIA_TYPES = ['application/json'];

export const NOT_JSON_DETAIL = 'Request bodies must be application/json.';

/** A request that carries a body must carry JSON (else 415); an empty body is no body. */
export function requireJsonBody(request: Request, _response: Response, next: NextFunction): void {
  const carriesBody = typeis.hasBody(request) && request.headers['content-length'] !== '0';
  if (carriesBody && !typeis(request, JSON_MEDIA_TYPES)) {
    next(new UnsupportedMediaTypeException(NOT_JSON_DETAIL));
    return;
  }
  next();
}

/** An error as body-parser raises its own: answered by its `type` (see the problem-details filter). */
const bodyError = (status: number, type: string, message: string) =>
  Object.assign(new Error(message), { status, type });

/**
 * The JSON body parsers' `verify`: a body is UTF-8, or refused. body-parser itself decodes any
 * `utf-*` charset the request names (a UTF-16 body was taken), and bytes that are no UTF-8 as
 * U+FFFD (stored as such). `charset` is the one it read from Content-Type (`utf-8` when none), so
 * both agree on what the request said.
 */
export function requireUtf8Body(_request: IncomingMessage, _response: ServerResponse, body: Buffer, charset: string) {
  if (charset !== 'utf-8') throw bodyError(415, 'charset.unsupported', `unsupported charset "${charset}"`);
  if (!isUtf8(body)) throw bodyError(400, 'entity.not.utf8', 'request body is not valid UTF-8');
}
