import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { authConfig, AuthConfig } from '../config/auth.config';
import { tenantOfRequest } from './api-keys';
import { isPublicRoute } from './public.decorator';
import { RequestWithTenant } from './tenant';

/**
 * With API keys configured, every route not marked `@Public()` needs `Authorization: Bearer
 * <key>`, and the request belongs to the key's tenant. Without keys, every request belongs to
 * the open tenant. A request without a valid key was already refused before its body was read
 * (see api-key-routes.ts), which kept the tenant it found; this guard decides for any request
 * that check did not, so no route goes unchecked.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    @authConfig.inject() private readonly auth: AuthConfig,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<RequestWithTenant & { headers: Record<string, unknown> }>();
    if (this.auth.apiKeys.length > 0 && isPublicRoute(this.reflector, context.getHandler(), context.getClass())) {
      return true;
    }
    request.tenant ??= tenantOfRequest(this.auth.apiKeys, request.headers.authorization);
    return true;
  }
}
