import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { PUBLIC_SECURITY_MARKER } from './auth/public.decorator';
import { UNTHROTTLED_MARKER } from './common/http/skip-rate-limit.decorator';
import { PROBLEM_CONTENT_TYPE } from './common/problem-details/problem-details.filter';
import { ProblemDto } from './common/problem-details/problem.dto';
import { RATE_LIMIT_RESPONSE } from './rate-limit/rate-limit-response';

export const DOCS_PATH = 'docs';
export const API_KEY_SCHEME = 'apiKey';

const UNAUTHORIZED_RESPONSE = {
  status: 401,
  description: 'Missing or invalid API key (only when the service has API keys configured)',
  headers: { 'WWW-Authenticate': { description: 'Bearer realm="konko"', schema: { type: 'string' } } },
  content: {
    [PROBLEM_CONTENT_TYPE]: {
      schema: { $ref: '#/components/schemas/ProblemDto' },
      example: {
        type: 'urn:konko:problem:unauthorized',
        title: 'Missing or invalid API key',
        status: 401,
        detail: 'This service needs an API key: send it as "Authorization: Bearer <key>".',
        instance: '/chats',
      },
    },
  },
};

type Operation = {
  security?: Record<string, string[]>[];
  responses?: Record<string, unknown>;
  [UNTHROTTLED_MARKER]?: boolean;
};

/**
 * Operations marked `@Public()` need no key: OpenAPI spells that `security: []`, which Nest's
 * decorators cannot express, so the marker they leave is replaced here, with the 401 they never give.
 * Operations marked `@SkipRateLimit()` lose the 429 every other one can answer, and the marker.
 */
function applyMarkers(document: OpenAPIObject): OpenAPIObject {
  for (const path of Object.values(document.paths)) {
    for (const operation of Object.values(path) as Operation[]) {
      if (operation.security?.some((requirement) => PUBLIC_SECURITY_MARKER in requirement)) {
        operation.security = [];
        delete operation.responses?.['401'];
      }
      if (operation[UNTHROTTLED_MARKER]) {
        delete operation[UNTHROTTLED_MARKER];
        delete operation.responses?.['429'];
      }
    }
  }
  return document;
}

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Konko Chat API')
    .setDescription(
      "Chat sessions and their messages; every message gets a reply from an LLM that sees the chat's history. " +
        'Every error is an RFC 9457 problem document (`application/problem+json`).',
    )
    .setVersion('0.1.0')
    // Not addBearerAuth, which would call the keys JWTs (`bearerFormat`): they are opaque strings.
    .addSecurity(API_KEY_SCHEME, {
      type: 'http',
      scheme: 'bearer',
      description:
        'An API key (an opaque string) from API_KEYS or API_KEYS_FILE, sent as `Authorization: Bearer <key>`. ' +
        'Needed on every route but health and docs when the service has keys configured; a service without keys runs open.',
    })
    .addSecurityRequirements(API_KEY_SCHEME)
    .addGlobalResponse(UNAUTHORIZED_RESPONSE)
    .addGlobalResponse(RATE_LIMIT_RESPONSE)
    .addGlobalResponse({
      status: 500,
      description: 'Unexpected failure (no internals are shown)',
      content: {
        [PROBLEM_CONTENT_TYPE]: {
          schema: { $ref: '#/components/schemas/ProblemDto' },
          example: {
            type: 'about:blank',
            title: 'Internal Server Error',
            status: 500,
            detail: 'The service failed to handle the request. It has been logged.',
            instance: '/chats',
          },
        },
      },
    })
    .build();
  return applyMarkers(SwaggerModule.createDocument(app, config, { extraModels: [ProblemDto] }));
}

/** Swagger UI at /docs, the OpenAPI JSON at /docs-json. */
export function setupOpenApi(app: INestApplication): void {
  SwaggerModule.setup(DOCS_PATH, app, () => buildOpenApiDocument(app), {
    jsonDocumentUrl: `${DOCS_PATH}-json`,
    customSiteTitle: 'Konko Chat API',
  });
}
