import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { authConfig, AuthConfig } from '../config/auth.config';
import { tenantForKey } from './api-keys';
import { IS_PUBLIC } from './public.decorator';
import { OPEN_TENANT_ID, RequestWithTenant } from './tenant';
import { UnauthorizedError } from './unauthorized.error';

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * With API keys configured, every route not marked `@Public()` needs `Authorization: Bearer
 * <key>`, and the request belongs to the key's tenant. Without keys, every request belongs to
 * the open tenant. Runs before the rate limiter, which counts per tenant.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @authConfig.inject() private readonly auth: AuthConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<RequestWithTenant & { headers: Record<string, unknown> }>();
    if (this.auth.apiKeys.length === 0) {
      request.tenant = { id: OPEN_TENANT_ID, authenticated: false };
      return true;
    }
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()])) return true;
    const header = request.headers.authorization;
    const key = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
    if (key === undefined) throw new UnauthorizedError('missing');
    const tenantId = tenantForKey(this.auth.apiKeys, key);
    if (tenantId === null) throw new UnauthorizedError('invalid');
    request.tenant = { id: tenantId, authenticated: true };
    return true;
  }
}
