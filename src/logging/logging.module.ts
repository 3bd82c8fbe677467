import { Global, Module } from '@nestjs/common';
import pino, { Logger as Pino } from 'pino';
import { loggingConfig, LoggingConfig, LogLevel } from '../config/logging.config';
import { AppLogger, ROOT_LOGGER } from './app-logger';

const PINO_LEVELS: Record<LogLevel, string> = {
  error: 'error',
  warn: 'warn',
  info: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/**
 * JSON lines are written to stdout synchronously, each as it is logged. pino's default hands every
 * write to libuv's thread pool, whose thread then competes with the turns for the core: on one
 * core, a streamed reply's first token came about 0.2 ms later that way (W6, A/B), for the same
 * CPU a turn. A line is also never lost in a buffer when the process dies. A stdout that stops
 * reading holds the service up rather than letting lines pile up in memory (docs/production.md).
 */
function rootLogger(config: LoggingConfig): Pino {
  const level = PINO_LEVELS[config.level];
  if (config.format === 'pretty') {
    return pino({ level, transport: { target: 'pino-pretty', options: { singleLine: true } } });
  }
  return pino({ level }, pino.destination({ dest: 1, sync: true }));
}

/**
 * Structured logs with pino: one JSON object a line (or pretty for people). The root logger and
 * Nest's logger on it ({@link AppLogger}) live here; the request log middleware is applied by the
 * HTTP set-up (`requestLogging`). Nothing here keeps a store per request: a line that belongs to
 * a request names its id itself.
 */
@Global()
@Module({
  providers: [
    {
      provide: ROOT_LOGGER,
      inject: [loggingConfig.KEY],
      useFactory: rootLogger,
    },
    AppLogger,
  ],
  exports: [ROOT_LOGGER, AppLogger],
})
export class LoggingModule {}
