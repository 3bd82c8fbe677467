import { applyDecorators, SetMetadata } from '@nestjs/common';
import { ApiSecurity } from '@nestjs/swagger';

export const IS_PUBLIC = 'konko:isPublic';

/** Marks an operation in the OpenAPI document; replaced there by `security: []` (see openapi.ts). */
export const PUBLIC_SECURITY_MARKER = 'public';

/** Routes that need no API key even when API keys are configured (health checks, the playground page). */
export const Public = () => applyDecorators(SetMetadata(IS_PUBLIC, true), ApiSecurity(PUBLIC_SECURITY_MARKER));
