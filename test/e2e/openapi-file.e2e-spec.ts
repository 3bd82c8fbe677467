import { NestExpressApplication } from '@nestjs/platform-express';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import request from 'supertest';
import { createTestApp } from '../support/test-app';

const ROOT = resolve(__dirname, '../..');
const OPENAPI_JSON = join(ROOT, 'docs/openapi.json');
const CLIENT_TYPES = join(ROOT, 'examples/typescript-client/api.d.ts');
const OPENAPI_TYPESCRIPT = join(ROOT, 'node_modules/.bin/openapi-typescript');

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

describe('The committed OpenAPI document and client types (e2e)', () => {
  let app: NestExpressApplication;

  beforeAll(async () => {
    app = await createTestApp();
  });
  afterAll(() => app.close());

  it('should keep docs/openapi.json the document the service serves at /docs-json', async () => {
    const served: unknown = (await request(app.getHttpServer()).get('/docs-json').expect(200)).body;
    expectUpToDate('docs/openapi.json', JSON.parse(readFileSync(OPENAPI_JSON, 'utf8')), served);
  });

  it("should keep the example's api.d.ts what openapi-typescript makes of docs/openapi.json", () => {
    const dir = mkdtempSync(join(tmpdir(), 'konko-openapi-'));
    try {
      const generated = join(dir, 'api.d.ts');
      execFileSync(OPENAPI_TYPESCRIPT, [OPENAPI_JSON, '--output', generated], { stdio: 'pipe' });
      expectUpToDate(
        'examples/typescript-client/api.d.ts',
        readFileSync(CLIENT_TYPES, 'utf8'),
        readFileSync(generated, 'utf8'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
