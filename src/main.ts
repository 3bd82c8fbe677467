import { Logger, LogLevel as NestLogLevel } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import type { AddressInfo } from 'node:net';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import { AppConfig, describeStorage, InvalidConfigError, LogLevel, parseAppConfig } from './config/app-config';
import { LlmProvider } from './llm/llm-provider';
import { AppLogger } from './logging/app-logger';
import { ShutdownState } from './health/shutdown-state';
import { TurnAdmission } from './messages/turn-admission';
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
  return llm.isOffline ? llm.describe() : `${llm.describe()} (default model ${config.llmModel})`;
}

async function bootstrap(): Promise<void> {
  const config = await loadConfig();
  // Nest's own boot chatter shows from LOG_LEVEL=debug; at info start-up is the one line below.
  const bootLevels = NEST_LOG_LEVELS[config.logLevel === 'info' ? 'warn' : config.logLevel];
  const app = await NestFactory.create<NestExpressApplication>(AppModule, { bodyParser: false, logger: bootLevels });
  configureApp(app);
  await app.listen(config.port, config.host);
  app.useLogger(app.get(AppLogger));
  stopGracefully(app, config);

  const { port } = app.getHttpServer().address() as AddressInfo;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  new Logger('Konko').log(
    `Konko Chat API listening on ${base} — storage: ${describeStorage(config.storage)}, ` +
      `LLM provider: ${describeLlm(app.get(LlmProvider), config)}, access: ${describeAccess(config)}, ` +
      `docs: ${base}/${DOCS_PATH}`,
  );
}

function describeAccess({ apiKeys }: AppConfig): string {
  if (apiKeys.length === 0) return 'open (no API_KEYS: anyone who can reach it can use it)';
  const tenants = new Set(apiKeys.map((key) => key.tenantId)).size;
  return `API keys of ${tenants} tenant${tenants === 1 ? '' : 's'}`;
}

/**
 * Graceful shutdown on SIGTERM or SIGINT: readiness turns false and no new connection or turn is
 * accepted; running turns get SHUTDOWN_GRACE_MS to finish, then are stopped (keeping what was
 * generated as incomplete); then storage closes.
 */
function stopGracefully(app: NestExpressApplication, config: AppConfig): void {
  const logger = new Logger('Shutdown');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log(`${signal}: draining turns for up to ${config.shutdownGraceMs} ms`);
    app.get(ShutdownState).begin();
    const server = app.getHttpServer();
    const connectionsClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    await app.get(TurnAdmission).drain(config.shutdownGraceMs);
    // Stopped turns still write their answers; give them a moment before cutting connections.
    server.closeIdleConnections();
    await Promise.race([connectionsClosed, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    server.closeAllConnections();
    await app.close();
    logger.log('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

void bootstrap();
