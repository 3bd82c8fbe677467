import { Reflector } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { ThrottlerException, ThrottlerStorage } from '@nestjs/throttler';
// The throttler's own address normalization (its default tracker's), which its index does not export.
import { normalizeIp } from '@nestjs/throttler/dist/ip';
import type { Request } from 'express';
import { RequestWithTenant } from '../auth/tenant';
import { RouteCheck } from '../common/http/before-body-parsing';
import { isRateLimitSkipped } from '../common/http/skip-rate-limit.decorator';
import { limitsConfig, LimitsConfig } from '../config/limits.config';
import { RATE_LIMIT_STORAGE } from './rate-limit.module';
import { rateLimitDetail } from './rate-limit-response';

/** The counter's name, kept from the throttler's keys so that counters carry over an upgrade. */
const COUNTER = 'default';

/** Whom a request counts for: its tenant once API keys are configured, else its address. */
function clientOf(request: Request): string {
  const { tenant } = request as RequestWithTenant;
  return tenant?.authenticated ? `tenant:${tenant.id}` : `ip:${normalizeIp(request.ip ?? '')}`;
}

/**
 * RATE_LIMIT requests per RATE_LIMIT_WINDOW_MS per client, whatever the route, counted before the
 * body is read (see checkBeforeBodyParsing): the caller's tenant once API keys are configured, else
 * the client address (an IPv6 address by its /64, as one host usually holds the whole block; an
 * IPv4 address mapped into IPv6 as the IPv4 one). A window starts at a client's first request.
 * Each counted answer says where the client stands (X-RateLimit-*); over the limit it is a 429
 * with Retry-After, until the window ends. Routes marked `SkipRateLimit()` are not counted, nor
 * requests while the counters' store fails.
 */
export function rateLimitCheck(app: NestExpressApplication): RouteCheck | null {
  const config = app.get<LimitsConfig>(limitsConfig.KEY);
  if (config.rateLimit === 0) return null;
  const { rateLimit: limit, rateLimitWindowMs: windowMs } = config;
  const storage = app.get<ThrottlerStorage>(RATE_LIMIT_STORAGE);
  const reflector = app.get(Reflector);
  const detail = rateLimitDetail(config);
  return ({ handler, controller }) =>
    isRateLimitSkipped(reflector, handler, controller)
      ? null
      : async (request, response) => {
          const key = `${COUNTER}:${clientOf(request)}`;
          const { totalHits, timeToExpire } = await storage.increment(key, windowMs, limit, windowMs, COUNTER);
          if (totalHits === 0) return; // uncounted: the store failed
          response.setHeader('X-RateLimit-Limit', limit);
          response.setHeader('X-RateLimit-Remaining', Math.max(0, limit - totalHits));
          response.setHeader('X-RateLimit-Reset', timeToExpire);
          if (totalHits <= limit) return;
          response.setHeader('Retry-After', timeToExpire);
          throw new ThrottlerException(detail);
        };
}
