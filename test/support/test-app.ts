import { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { AppModule } from '../../src/app.module';
import { configureApp } from '../../src/app.setup';
import { ChatRepository } from '../../src/chats/chat.repository';
import { CONFIG_SLICES } from '../../src/config/config-slices';
import { LlmProvider } from '../../src/llm/llm-provider';

export interface TestAppOptions {
  /** Replaces the bound LLM provider, as users do in their own tests. */
  llm?: LlmProvider;
  /** Environment variables, parsed exactly as at start-up. */
  env?: Record<string, string>;
  repository?: ChatRepository;
}

/** The real application, configured as `main.ts` does, with chosen parts swapped. */
export async function createTestApp(options: TestAppOptions = {}): Promise<NestExpressApplication> {
  // Request logs would drown the test output; tests that read logs run the built service.
  const env = { LOG_LEVEL: 'error', LOG_FORMAT: 'json', ...options.env };
  let builder = Test.createTestingModule({ imports: [AppModule] });
  for (const slice of CONFIG_SLICES) builder = builder.overrideProvider(slice.KEY).useValue(slice.parse(env));
  if (options.llm) builder = builder.overrideProvider(LlmProvider).useValue(options.llm);
  if (options.repository) builder = builder.overrideProvider(ChatRepository).useValue(options.repository);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication<NestExpressApplication>({ bodyParser: false, logger: false });
  configureApp(app);
  await app.init();
  return app;
}

/** Starts the app on a free loopback port, for clients that need a real URL; returns its base URL. */
export async function listenOnLoopback(app: NestExpressApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  return app.getUrl();
}
