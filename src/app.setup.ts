import { NestExpressApplication } from '@nestjs/platform-express';
import { JSON_MEDIA_TYPES, requireJsonBody } from './common/http/require-json-body.middleware';
import { ProblemDetailsFilter } from './common/problem-details/problem-details.filter';
import { RequestValidationPipe } from './common/validation/request-validation.pipe';
import { setupOpenApi } from './openapi';

/** Largest accepted JSON body: a 32,000-character message is at most 128 KiB of UTF-8. */
export const BODY_LIMIT = '1mb';

/**
 * Everything the HTTP edge needs, shared by `main.ts` and the tests so they serve the same
 * service. The app must be created with `bodyParser: false`.
 */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  app.disable('x-powered-by');
  app.use(requireJsonBody);
  app.useBodyParser('json', { limit: BODY_LIMIT, type: JSON_MEDIA_TYPES });
  app.useGlobalFilters(new ProblemDetailsFilter());
  app.useGlobalPipes(new RequestValidationPipe());
  app.enableShutdownHooks();
  setupOpenApi(app);
  return app;
}
