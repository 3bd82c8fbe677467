import { applyDecorators, ExecutionContext, SetMetadata, Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiExtension } from '@nestjs/swagger';

const SKIP_RATE_LIMIT = 'konko:skipRateLimit';

/** Marks an operation in the OpenAPI document; removed there, with the operation's 429 (see openapi.ts). */
export const UNTHROTTLED_MARKER = 'x-konko-unthrottled';

/**
 * Routes the rate limit never counts (health checks, metrics, the playground). Every other
 * operation documents the rate limit's 429; these do not.
 */
export const SkipRateLimit = () =>
  applyDecorators(SetMetadata(SKIP_RATE_LIMIT, true), ApiExtension(UNTHROTTLED_MARKER, true));

/** Whether a route handler, or its controller, is marked {@link SkipRateLimit}. */
export const isRateLimitSkipped = (
  reflector: Reflector,
  handler: ReturnType<ExecutionContext['getHandler']>,
  controller: Type,
): boolean => reflector.getAllAndOverride<boolean | undefined>(SKIP_RATE_LIMIT, [handler, controller]) === true;
