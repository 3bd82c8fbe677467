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
 * The root pino logger: the level's lines and those above it, as JSON or pretty. `sync` JSON is
 * written at once, so that a second logger's lines (start-up's) keep their order with the root's.
 */
export function createRootLogger({ level, format }: LoggingConfig, { sync = false } = {}): Pino {
  if (format === 'json' && sync) return pino({ level: PINO_LEVELS[level] }, pino.destination({ dest: 1, sync: true }));
  return pino({
    level: PINO_LEVELS[level],
    transport: format === 'pretty' ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
  });
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
      useFactory: createRootLogger,
    },
    AppLogger,
  ],
  exports: [ROOT_LOGGER, AppLogger],
})
export class LoggingModule {}
