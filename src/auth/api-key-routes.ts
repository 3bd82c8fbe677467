import { Reflector } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { RouteCheck } from '../common/http/before-body-parsing';
import { authConfig, AuthConfig } from '../config/auth.config';
import { tenantOfRequest } from './api-keys';
import { isPublicRoute } from './public.decorator';
import { RequestWithTenant } from './tenant';

/**
 * With API keys configured, refuses a request to a route that needs one (the guard's rule: not
 * `@Public()`) and has no valid one, before its body is read (see checkBeforeBodyParsing). The
 * tenant found is kept for the guard, which then does not check the key again, and for the rate
 * limit, which counts per tenant.
 */
export function apiKeyCheck(app: NestExpressApplication): RouteCheck | null {
  const { apiKeys } = app.get<AuthConfig>(authConfig.KEY);
  if (apiKeys.length === 0) return null;
  const reflector = app.get(Reflector);
  return ({ handler, controller }) =>
    isPublicRoute(reflector, handler, controller)
      ? null
      : (request) => {
          (request as RequestWithTenant).tenant = tenantOfRequest(apiKeys, request.headers.authorization);
        };
}
