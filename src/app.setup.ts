import { NestExpressApplication } from '@nestjs/platform-express';
import { json, NextFunction, Request, Response } from 'express';
import helmet from 'helmet';
import { apiKeyCheck } from './auth/api-key-routes';
import { checkBeforeBodyParsing } from './common/http/before-body-parsing';
import { answerHttpParserErrors, answerUnmetRequirements, requireHostHeader } from './common/http/http-parser-errors';
import { JSON_MEDIA_TYPES, requireJsonBody, requireUtf8Body } from './common/http/require-json-body.middleware';
import { takeUndecodablePathSegmentsAsWritten } from './common/http/undecodable-path.middleware';
import { passOnBodyParserErrors, ProblemDetailsFilter } from './common/problem-details/problem-details.filter';
import { RequestValidationPipe } from './common/validation/request-validation.pipe';
import { httpConfig, HttpConfig } from './config/http.config';
import { IDEMPOTENT_REPLAYED_HEADER } from './idempotency/idempotency-key.decorator';
import { ROOT_LOGGER } from './logging/app-logger';
import { requestLogging } from './logging/request-logging';
import { httpMetrics } from './metrics/http-metrics.middleware';
import { Metrics } from './metrics/metrics';
import { setupOpenApi } from './openapi';
import { rateLimitCheck } from './rate-limit/rate-limit-check';
import { IMPORT_PATH } from './transfer/import-path';

/**
 * Everything the HTTP edge needs, shared by `main.ts` and the tests so they serve the same
 * service. The app must be created with `bodyParser: false`.
 */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  const config = app.get<HttpConfig>(httpConfig.KEY);
  app.disable('x-powered-by');
  app.getHttpServer().keepAliveTimeout = config.keepAliveTimeoutMs;
  answerHttpParserErrors(app.getHttpServer(), app.get(ROOT_LOGGER));
  answerUnmetRequirements(app.getHttpServer(), app.get(ROOT_LOGGER));
  // Rate limits and logs read the client's address from `req.ip`, which this setting governs.
  app.set('trust proxy', config.trustProxy);
  app.use(requestLogging(app.get(ROOT_LOGGER)));
  app.use(httpMetrics(app.get(Metrics)));
  app.use(requireHostHeader);
  // Served over plain HTTP too (local, behind a TLS proxy): upgrading subresources would break /docs.
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
  if (config.corsOrigins.length > 0) {
    app.enableCors({
      origin: config.corsOrigins,
      // Every response header the API documents, so a browser front end can read them too.
      exposedHeaders: [
        'Location',
        'Retry-After',
        IDEMPOTENT_REPLAYED_HEADER,
        'X-Request-Id',
        'X-RateLimit-Limit',
        'X-RateLimit-Remaining',
        'X-RateLimit-Reset',
        'WWW-Authenticate',
      ],
      maxAge: 600,
    });
  }
  // Before any route is matched, the early API-key routes included.
  app.use(takeUndecodablePathSegmentsAsWritten);
  // Before anything reads a body: a caller without a valid key, or over its rate limit, must not
  // cost the service a parse. The key first: the limit counts per tenant.
  checkBeforeBodyParsing(app, [apiKeyCheck(app), rateLimitCheck(app)]);
  app.use(requireJsonBody);
  // Not strict: any JSON value is parsed, so `null` or `42` reach the validation pipe and are told
  // they are not an object (422), as `[]` is; only malformed JSON is a 400. (Nest's `rawBody`
  // option would replace `verify`.)
  const parsing = { type: JSON_MEDIA_TYPES, strict: false, verify: requireUtf8Body };
  // Imports carry whole chats: their route alone reads bodies up to IMPORT_BODY_LIMIT. Its parser
  // runs first, and the general one then leaves a body already read alone.
  const importBody = json({ ...parsing, limit: config.importBodyLimit });
  app.use(`/${IMPORT_PATH}`, (request: Request, response: Response, next: NextFunction) =>
    request.method === 'POST' ? importBody(request, response, next) : next(),
  );
  // A 32,000-character message is at most 128 KiB of UTF-8; the default 1 MB leaves room.
  app.useBodyParser('json', { ...parsing, limit: config.bodyLimit });
  app.use(passOnBodyParserErrors);
  app.useGlobalFilters(new ProblemDetailsFilter());
  app.useGlobalPipes(new RequestValidationPipe());
  setupOpenApi(app);
  return app;
}
