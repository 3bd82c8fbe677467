import { NestExpressApplication } from '@nestjs/platform-express';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import request from 'supertest';
import { createTestApp } from '../support/test-app';

const ROOT = resolve(__dirname, '../..');
const OPENAPI_JSON = join(ROOT, 'docs/openapi.json');

/** Fails with the difference and the one command that brings the committed file up to date. */
function expectUpToDate(file: string, committed: unknown, current: unknown): void {
  try {
    expect(committed).toEqual(current);
  } catch (error) {
    throw new Error(
      `${file} is out of date: run \`npm run openapi\` and commit the result.\n\n${(error as Error).message}`,
    );
  }
}

describe('The committed OpenAPI document (e2e)', () => {
  let app: NestExpressApplication;

  beforeAll(async () => {
    app = await createTestApp();
  });
  afterAll(() => app.close());

  it('should keep docs/openapi.json the document the service serves at /docs-json', async () => {
    const served: unknown = (await request(app.getHttpServer()).get('/docs-json').expect(200)).body;
    expectUpToDate('docs/openapi.json', JSON.parse(readFileSync(OPENAPI_JSON, 'utf8')), served);
  });
});
