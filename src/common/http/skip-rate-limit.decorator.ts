import { applyDecorators } from '@nestjs/common';
import { ApiExtension } from '@nestjs/swagger';
import { SkipThrottle } from '@nestjs/throttler';

/** Marks an operation in the OpenAPI document; removed there, with the operation's 429 (see openapi.ts). */
export const UNTHROTTLED_MARKER = 'x-konko-unthrottled';

/**
 * Routes the rate limit never counts (health checks, metrics, the playground). Every other
 * operation documents the rate limit's 429; these do not.
 */
export const SkipRateLimit = () => applyDecorators(SkipThrottle(), ApiExtension(UNTHROTTLED_MARKER, true));
