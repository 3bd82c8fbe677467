import { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { PROBLEM_CONTENT_TYPE } from './common/problem-details/problem-details.filter';
import { ProblemDto } from './common/problem-details/problem.dto';

export const DOCS_PATH = 'docs';

export function buildOpenApiDocument(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Konko Chat API')
    .setDescription(
      "Chat sessions and their messages; every message gets a reply from an LLM that sees the chat's history. " +
        'Every error is an RFC 9457 problem document (`application/problem+json`).',
    )
    .setVersion('0.1.0')
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
  return SwaggerModule.createDocument(app, config, { extraModels: [ProblemDto] });
}

/** Swagger UI at /docs, the OpenAPI JSON at /docs-json. */
export function setupOpenApi(app: INestApplication): void {
  SwaggerModule.setup(DOCS_PATH, app, () => buildOpenApiDocument(app), {
    jsonDocumentUrl: `${DOCS_PATH}-json`,
    customSiteTitle: 'Konko Chat API',
  });
}
