import { applyDecorators, ExecutionContext, SetMetadata, Type } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ApiSecurity } from '@nestjs/swagger';

export const IS_PUBLIC = 'konko:isPublic';

/** Marks an operation in the OpenAPI document; replaced there by `security: []` (see openapi.ts). */
export const PUBLIC_SECURITY_MARKER = 'public';

/** Routes that need no API key even when API keys are configured (health checks, the playground page). */
export const Public = () => applyDecorators(SetMetadata(IS_PUBLIC, true), ApiSecurity(PUBLIC_SECURITY_MARKER));

/** Whether a route handler, or its controller, is marked {@link Public}. */
export const isPublicRoute = (
  reflector: Reflector,
  handler: ReturnType<ExecutionContext['getHandler']>,
  controller: Type,
): boolean => reflector.getAllAndOverride<boolean | undefined>(IS_PUBLIC, [handler, controller]) === true;
