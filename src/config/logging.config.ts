import { Transform } from 'class-transformer';
import { IsIn, IsOptional } from 'class-validator';
import { configSlice, emptyToUndefined, Environment, readVariables } from './env';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'verbose';
export type LogFormat = 'json' | 'pretty';

export interface LoggingConfig {
  level: LogLevel;
  /** `pretty` for people, `json` (one object a line) for log pipelines. */
  format: LogFormat;
}

class LoggingVariables {
  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['error', 'warn', 'info', 'debug', 'verbose'])
  LOG_LEVEL?: LogLevel;

  @IsOptional()
  @Transform(emptyToUndefined)
  @IsIn(['json', 'pretty'])
  LOG_FORMAT?: LogFormat;
}

export function parseLoggingConfig(env: Environment): LoggingConfig {
  const vars = readVariables(LoggingVariables, env);
  return { level: vars.LOG_LEVEL ?? 'info', format: vars.LOG_FORMAT ?? (process.stdout.isTTY ? 'pretty' : 'json') };
}

export const loggingConfig = configSlice('logging', parseLoggingConfig);
