import { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import { CONFIG_SLICES } from './config/config-slices';
import { buildOpenApiDocument } from './openapi';

const OPENAPI_JSON = resolve(__dirname, '../docs/openapi.json');

/**
 * `npm run openapi`: writes the document the service serves at /docs-json to docs/openapi.json,
 * from the application configured as `main.ts` configures it, without listening.
 */
async function writeOpenApi(): Promise<void> {
  // Every setting at its default, whatever the caller's environment or .env says: in-memory storage
  // and the offline provider need no database or model, and the file cannot depend on who wrote it.
  // The testing module is what lets the configuration be replaced before any provider reads it.
  let builder = Test.createTestingModule({ imports: [AppModule] });
  for (const slice of CONFIG_SLICES) builder = builder.overrideProvider(slice.KEY).useValue(slice.parse({}));
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ bodyParser: false, logger: false });
  configureApp(app);
  await app.init();
  try {
    writeFileSync(OPENAPI_JSON, `${JSON.stringify(buildOpenApiDocument(app), null, 2)}\n`);
  } finally {
    await app.close();
  }
  process.stdout.write(`Wrote ${relative(process.cwd(), OPENAPI_JSON)}\n`);
}

writeOpenApi().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
