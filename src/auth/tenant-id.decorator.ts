import { createParamDecorator, ExecutionContext } from '@nestjs/common';
import { RequestWithTenant, tenantIdOf } from './tenant';

/** The id of the tenant the request belongs to (see {@link tenantIdOf}). */
export const TenantId = createParamDecorator((_: unknown, context: ExecutionContext): string =>
  tenantIdOf(context.switchToHttp().getRequest<RequestWithTenant>()),
);
