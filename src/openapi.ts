import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, ResponseObject, SwaggerModule } from '@nestjs/swagger';
import { PUBLIC_SECURITY_MARKER } from './auth/public.decorator';
import { StorageUnavailableError } from './common/errors/storage-unavailable.error';
import { UNTHROTTLED_MARKER } from './common/http/skip-rate-limit.decorator';
import { problemResponse, retryAfterHeader } from './common/problem-details/api-problem-response.decorator';
import { PROBLEM_CONTENT_TYPE } from './common/problem-details/problem-details.filter';
import { ProblemDto } from './common/problem-details/problem.dto';
import { problemTypeUri } from './common/problem-details/problem-type';
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

const storageUnavailable = new StorageUnavailableError(undefined);
const STORAGE_UNAVAILABLE = {
  description: 'With DATABASE_URL: the database is unreachable (`storage-unavailable`)',
  retryAfter: `${storageUnavailable.retryAfterSeconds} when the database is unreachable`,
  example: {
    summary: storageUnavailable.title,
    value: {
      type: problemTypeUri(storageUnavailable.code),
      title: storageUnavailable.title,
      status: 503,
      detail: storageUnavailable.message,
      instance: '/chats',
    },
  },
};

type Operation = {
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; example?: unknown; schema?: { example?: unknown } }[];
  responses: Record<string, ResponseObject>;
  [UNTHROTTLED_MARKER]?: boolean;
};

/**
 * Each problem example names the operation's own path as its `instance`, with the example ids of
 * its path parameters: the decorators that write the examples do not know the route they are on.
 * Copies, since examples are shared between operations.
 */
function nameInstances(path: string, operation: Operation): void {
  const instance = path.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const parameter = operation.parameters?.find(({ in: where, name: named }) => where === 'path' && named === name);
    const example = parameter?.example ?? parameter?.schema?.example;
    return typeof example === 'string' ? example : whole;
  });
  const withInstance = (example: unknown) =>
    example && typeof example === 'object' && 'instance' in example ? { ...example, instance } : example;
  for (const [status, response] of Object.entries(operation.responses)) {
    const media = response.content?.[PROBLEM_CONTENT_TYPE];
    if (!media) continue;
    const examples =
      media.examples &&
      Object.fromEntries(
        Object.entries(media.examples).map(([name, example]) => [
          name,
          'value' in example ? { ...example, value: withInstance(example.value) } : example,
        ]),
      );
    operation.responses[status] = {
      ...response,
      content: {
        ...response.content,
        [PROBLEM_CONTENT_TYPE]: {
          ...media,
          ...(media.example !== undefined && { example: withInstance(media.example) }),
          ...(examples && { examples }),
        },
      },
    };
  }
}

/**
 * Every operation that reads or writes the chats can meet an unreachable database: its 503, or a
 * variant of the 503 it answers for other reasons.
 */
function declareStorageUnavailable(operation: Operation): void {
  const own = operation.responses['503'];
  if (!own) {
    const { status: _status, ...response } = problemResponse(503, {
      description: STORAGE_UNAVAILABLE.description,
      type: STORAGE_UNAVAILABLE.example.value.type,
      title: STORAGE_UNAVAILABLE.example.value.title,
      detail: STORAGE_UNAVAILABLE.example.value.detail,
      headers: retryAfterHeader(`Seconds to wait: ${STORAGE_UNAVAILABLE.retryAfter}`),
    });
    operation.responses['503'] = response as ResponseObject;
    return;
  }
  // A copy: the document is built anew for each request of /docs-json, from the same decorators.
  const retryAfter = own.headers?.['Retry-After'] as { description: string } | undefined;
  const media = own.content![PROBLEM_CONTENT_TYPE];
  const { example, examples, ...rest } = media;
  const name = (type: string) =>
    type.replace(/^.*:/, '').replace(/-(\w)/g, (_dash, letter: string) => letter.toUpperCase());
  const named = example
    ? { [name((example as { type: string }).type)]: { summary: (example as { title: string }).title, value: example } }
    : examples;
  operation.responses['503'] = {
    ...own,
    description: `${own.description}; ${STORAGE_UNAVAILABLE.description.replace('With', 'with')}`,
    headers: {
      ...own.headers,
      'Retry-After': retryAfter
        ? { ...retryAfter, description: `${retryAfter.description}; ${STORAGE_UNAVAILABLE.retryAfter}` }
        : retryAfterHeader(`Seconds to wait, ${STORAGE_UNAVAILABLE.retryAfter}`)['Retry-After'],
    },
    content: {
      ...own.content,
      [PROBLEM_CONTENT_TYPE]: { ...rest, examples: { ...named, storageUnavailable: STORAGE_UNAVAILABLE.example } },
    },
  };
}

/**
 * Operations marked `@Public()` need no key: OpenAPI spells that `security: []`, which Nest's
 * decorators cannot express, so the marker they leave is replaced here, with the 401 they never give.
 * Operations marked `@SkipRateLimit()` lose the 429 every other one can answer, and the marker.
 * The others work on the chats, and can find the database unreachable. Every problem example
 * then names its operation's path.
 */
function applyMarkers(document: OpenAPIObject): OpenAPIObject {
  for (const [route, path] of Object.entries(document.paths)) {
    for (const operation of Object.values(path) as Operation[]) {
      const open = operation.security?.some((requirement) => PUBLIC_SECURITY_MARKER in requirement);
      if (open) {
        operation.security = [];
        delete operation.responses['401'];
      }
      const unthrottled = operation[UNTHROTTLED_MARKER];
      if (unthrottled) {
        delete operation[UNTHROTTLED_MARKER];
        delete operation.responses['429'];
      }
      if (!open && !unthrottled) declareStorageUnavailable(operation);
      nameInstances(route, operation);
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
