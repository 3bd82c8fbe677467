import { Logger, LogLevel as NestLogLevel } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { Logger as PinoLogger } from 'nestjs-pino';
import type { AddressInfo } from 'node:net';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import { AppConfig, describeStorage, InvalidConfigError, LogLevel, parseAppConfig } from './config/app-config';
import { LlmProvider } from './llm/llm-provider';
import { OpenAiLlmProvider } from './llm/openai-llm.provider';
import { DOCS_PATH } from './openapi';

const NEST_LOG_LEVELS: Record<LogLevel, NestLogLevel[]> = {
  error: ['fatal', 'error'],
  warn: ['fatal', 'error', 'warn'],
  info: ['fatal', 'error', 'warn', 'log'],
  debug: ['fatal', 'error', 'warn', 'log', 'debug'],
  verbose: ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'],
};

/** Validates the environment before Nest starts, so a bad value costs one clear line. */
async function loadConfig(): Promise<AppConfig> {
  await ConfigModule.envVariablesLoaded;
  try {
    return parseAppConfig(process.env);
  } catch (error) {
    if (!(error instanceof InvalidConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

function describeLlm(llm: LlmProvider, config: AppConfig): string {
  if (llm instanceof OpenAiLlmProvider) return `openai (default model ${config.llmModel} at ${llm.endpoint})`;
  return `${llm.name} (no model configured: replies say so)`;
}

async function bootstrap(): Promise<void> {
  const config = await loadConfig();
  // Nest's own boot chatter shows from LOG_LEVEL=debug; at info start-up is the one line below.
  const bootLevels = NEST_LOG_LEVELS[config.logLevel === 'info' ? 'warn' : config.logLevel];
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { bodyParser: false, logger: bootLevels });
  configureApp(app);
  await app.listen(config.port, config.host);
  app.useLogger(app.get(PinoLogger));

  const { port } = app.getHttpServer().address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  new Logger('Konko').log(
    `Konko Chat API listening on ${base} — storage: ${describeStorage(config.storage)}, ` +
      `LLM provider: ${describeLlm(app.get(LlmProvider), config)}, docs: ${base}/${DOCS_PATH}`,
  );
}

void bootstrap();
