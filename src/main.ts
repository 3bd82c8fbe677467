import { ConsoleLogger, Logger, LoggerService, LogLevel as NestLogLevel } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import { authConfig, AuthConfig } from './config/auth.config';
import { parseEveryConfigSlice } from './config/config-slices';
import { InvalidConfigError } from './config/env';
import { httpConfig, HttpConfig, unusableAddress } from './config/http.config';
import { llmConfig, LlmConfig } from './config/llm.config';
import { loggingConfig, LoggingConfig, LogLevel } from './config/logging.config';
import { describeStorage, storageConfig } from './config/storage.config';
import { LlmProvider } from './llm/llm-provider';
import { AppLogger } from './logging/app-logger';
import { createRootLogger } from './logging/logging.module';
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

/**
 * Nest's logger until the service listens: its boot chatter shows from LOG_LEVEL=debug (at info,
 * start-up is the one line `bootstrap` writes), in the same format as every later line. Without
 * its errors: Nest logs a failure to start, with its stack, before it throws it, and
 * {@link failToStart} reports each once.
 */
function bootLogger({ level, format }: LoggingConfig): LoggerService {
  const bootLevel = level === 'info' ? 'warn' : level;
  const logger =
    format === 'json'
      ? new AppLogger(createRootLogger({ level: bootLevel, format }, { sync: true }))
      : new ConsoleLogger({ logLevels: NEST_LOG_LEVELS[bootLevel] });
  return {
    log: (message, ...params) => logger.log(message, ...params),
    warn: (message, ...params) => logger.warn(message, ...params),
    debug: (message, ...params) => logger.debug(message, ...params),
    verbose: (message, ...params) => logger.verbose(message, ...params),
    error: () => undefined,
    fatal: () => undefined,
  };
}

function describeLlm(llm: LlmProvider, { defaultModel }: LlmConfig): string {
  return llm.isOffline ? llm.describe() : `${llm.describe()} (default model ${defaultModel})`;
}

async function bootstrap(): Promise<void> {
  await ConfigModule.envVariablesLoaded;
  // Every value is checked before Nest starts, so a bad one costs one clear line.
  parseEveryConfigSlice(process.env);
  const app = await NestFactory.create<NestExpressApplication>(AppModule, {
    bodyParser: false,
    logger: bootLogger(loggingConfig.parse(process.env)),
    abortOnError: false,
  });
  const http = app.get<HttpConfig>(httpConfig.KEY);
  configureApp(app);
  await app.listen(http.port, http.host).catch((error: NodeJS.ErrnoException) => {
    throw unusableAddress(error, http) ?? error;
  });
  app.useLogger(app.get(AppLogger));
  stopGracefully(app, http);

  const { port } = app.getHttpServer().address() as AddressInfo;
  const host = http.host === '0.0.0.0' || http.host === '::' ? 'localhost' : http.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const llm = describeLlm(app.get(LlmProvider), app.get(llmConfig.KEY));
  new Logger('Konko').log(
    `Konko Chat API listening on ${base} — storage: ${describeStorage(app.get(storageConfig.KEY).database)}, ` +
      `LLM provider: ${llm}, access: ${describeAccess(app.get(authConfig.KEY))}, docs: ${base}/${DOCS_PATH}`,
  );
}

function describeAccess({ apiKeys }: AuthConfig): string {
  if (apiKeys.length === 0) return 'open (no API_KEYS: anyone who can reach it can use it)';
  const tenants = new Set(apiKeys.map((key) => key.tenantId)).size;
  return `API keys of ${tenants} tenant${tenants === 1 ? '' : 's'}`;
}

/** After the grace, how long turns just stopped have to write their answers before connections are cut. */
const STOPPED_ANSWERS_MS = 2000;
/** While shutting down, how often connections that went idle are closed. */
const IDLE_SWEEP_MS = 100;

/**
 * Graceful shutdown on SIGTERM or SIGINT: readiness turns false and no new connection or turn is
 * accepted; running turns get SHUTDOWN_GRACE_MS to finish, then are stopped (keeping what was
 * generated as incomplete); other requests in flight get the same grace; then connections still
 * open are cut and storage closes.
 */
function stopGracefully(app: NestExpressApplication, { shutdownGraceMs }: HttpConfig): void {
  const logger = new Logger('Shutdown');
  const server = app.getHttpServer();
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    const graceEnds = performance.now() + shutdownGraceMs;
    logger.log(`${signal}: draining requests and turns for up to ${shutdownGraceMs} ms`);
    app.get(ShutdownState).begin();
    const connectionsClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    // `server.close` closes only the connections idle at that moment: one whose request ends later
    // would hold the process until its keep-alive timeout. Swept while draining, so that requests
    // pay nothing for it (a listener per request did).
    const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    await app.get(TurnAdmission).drain(shutdownGraceMs);
    // Other requests get the rest of the grace too, and turns just stopped a moment to answer.
    const cutAfterMs = Math.max(0, graceEnds - performance.now()) + STOPPED_ANSWERS_MS;
    const cut = setTimeout(() => server.closeAllConnections(), cutAfterMs);
    await connectionsClosed;
    clearTimeout(cut);
    clearInterval(sweep);
    await app.close();
    logger.log('stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

/**
 * Ends a start-up that failed, with exit code 1: a setting the service cannot start with in the one
 * line that names it, anything else (a bug) with its stack.
 */
function failToStart(error: unknown): never {
  process.stderr.write(`${error instanceof InvalidConfigError ? error.message : inspect(error)}\n`);
  process.exit(1);
}

bootstrap().catch(failToStart);
