import { Module } from '@nestjs/common';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { LoggerModule } from 'nestjs-pino';
import { AppConfig, appConfig, LogLevel } from '../config/app-config';

export const REQUEST_ID_HEADER = 'x-request-id';
/** A client's request id is used only if it is short and plain, so it cannot forge log lines. */
const ACCEPTABLE_REQUEST_ID = /^[\w.:-]{1,128}$/;

const PINO_LEVELS: Record<LogLevel, string> = {
  error: 'error',
  warn: 'warn',
  info: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/** The client's `X-Request-Id` or a new one, echoed back on the response. */
export function requestIdOf(request: IncomingMessage, response: ServerResponse): string {
  const given = request.headers[REQUEST_ID_HEADER];
  const id = typeof given === 'string' && ACCEPTABLE_REQUEST_ID.test(given) ? given : randomUUID();
  response.setHeader('X-Request-Id', id);
  return id;
}

/** What a request's log lines say about it: no headers but the client's user agent. */
function requestLogFields(req: {
  id: unknown;
  method: string;
  url: string;
  remoteAddress?: string;
  headers: IncomingHttpHeaders;
}) {
  return {
    id: req.id,
    method: req.method,
    url: req.url,
    remoteAddress: req.remoteAddress,
    userAgent: req.headers['user-agent'],
  };
}

function responseLogFields(res: { statusCode: number }) {
  return { statusCode: res.statusCode };
}

/**
 * Structured logs with pino: one JSON object a line (or pretty for people), each request's lines
 * carrying its request id. Headers (credentials among them) and bodies (message content) are
 * never logged.
 */
@Module({
  imports: [
    LoggerModule.forRootAsync({
      inject: [appConfig.KEY],
      useFactory: (config: AppConfig) => ({
        pinoHttp: {
          level: PINO_LEVELS[config.logLevel],
          genReqId: requestIdOf,
          // A whitelist rather than redaction: no header but User-Agent is logged, so credentials
          // (Authorization, Cookie, X-Api-Key) never reach the log and nothing is redacted per request.
          serializers: { req: requestLogFields, res: responseLogFields },
          transport:
            config.logFormat === 'pretty' ? { target: 'pino-pretty', options: { singleLine: true } } : undefined,
        },
      }),
    }),
  ],
})
export class LoggingModule {}
