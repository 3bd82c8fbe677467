import { UnsupportedMediaTypeException } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import typeis from 'type-is';

/** The one media type of request bodies: no `+json` type either (JSON Merge Patch means other rules). */
export const JSON_MEDIA_TYPES = ['application/json'];

/** A request that carries a body must carry JSON (else 415); an empty body is no body. */
export function requireJsonBody(request: Request, _response: Response, next: NextFunction): void {
  const carriesBody = typeis.hasBody(request) && request.headers['content-length'] !== '0';
  if (carriesBody && !typeis(request, JSON_MEDIA_TYPES)) {
    next(new UnsupportedMediaTypeException('Request bodies must be application/json.'));
    return;
  }
  next();
}
