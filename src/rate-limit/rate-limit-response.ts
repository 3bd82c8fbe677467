import {
  problemResponse,
  rateLimitHeaders,
  retryAfterHeader,
} from '../common/problem-details/api-problem-response.decorator';
import { LimitsConfig, parseLimitsConfig } from '../config/limits.config';

/** The detail of the 429 over the rate limit. */
export const rateLimitDetail = ({ rateLimit, rateLimitWindowMs }: LimitsConfig) =>
  `More than ${rateLimit} requests in ${rateLimitWindowMs / 1000} s; retry after the time in Retry-After.`;

/**
 * The rate limit counts every route, so every operation declares its 429, a global response of
 * the document, but those marked `SkipRateLimit()`. The example is at the default limits.
 */
export const RATE_LIMIT_RESPONSE = problemResponse(429, {
  description:
    'Over RATE_LIMIT requests in RATE_LIMIT_WINDOW_MS, all routes together (per tenant, or per client ' +
    'address while the service runs open)',
  detail: rateLimitDetail(parseLimitsConfig({})),
  headers: {
    ...retryAfterHeader('Seconds until the rate limit lets the client in again'),
    ...rateLimitHeaders('Requests left in the window: 0'),
  },
});
