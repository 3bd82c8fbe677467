import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheckResult, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { Public } from '../auth/public.decorator';
import { OPEN_TENANT_ID } from '../auth/tenant';
import { ChatRepository } from '../chats/chat.repository';
import { messageOf } from '../common/errors/error-message';
import { SkipRateLimit } from '../common/http/skip-rate-limit.decorator';
import { ApiProblemResponse } from '../common/problem-details/api-problem-response.decorator';
import { LlmProvider } from '../llm/llm-provider';
import { TurnRelay } from '../messages/turn-relay';
import { NotReadyError } from './not-ready.error';
import { ShutdownState } from './shutdown-state';

/** A UUID that names no chat: reading it exercises the storage without touching data. */
const PROBE_CHAT_ID = '00000000-0000-7000-8000-000000000000';

const HEALTH_EXAMPLE = {
  status: 'ok',
  info: {
    storage: { status: 'up' },
    shutdown: { status: 'up' },
    llm: { status: 'up', provider: 'offline' },
  },
  error: {},
  details: {
    storage: { status: 'up' },
    shutdown: { status: 'up' },
    llm: { status: 'up', provider: 'offline' },
  },
};

@ApiTags('operations')
@Controller('health')
@Public()
@SkipRateLimit()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly chats: ChatRepository,
    private readonly llm: LlmProvider,
    private readonly shutdown: ShutdownState,
    private readonly relay: TurnRelay,
  ) {}

  @Get('live')
  @ApiOperation({ summary: 'Liveness: the process answers' })
  @ApiOkResponse({
    description: 'Alive',
    schema: { type: 'object' },
    example: { status: 'ok', info: {}, error: {}, details: {} },
  })
  live(): Promise<HealthCheckResult> {
    return this.health.check([]);
  }

  @Get('ready')
  @ApiOperation({
    summary: 'Readiness: storage (and Redis, with REDIS_URL) answers and the service is not shutting down',
    description:
      "Also reports the LLM provider bound; the provider's state never makes the service unready. With REDIS_URL, " +
      '`redis` is checked too: stops and resumes of turns on other instances go through it.',
  })
  @ApiOkResponse({ description: 'Ready', schema: { type: 'object' }, example: HEALTH_EXAMPLE })
  @ApiProblemResponse(503, {
    description: 'The service is not ready',
    type: 'urn:konko:problem:not-ready',
    detail: 'Not ready: storage failing.',
    extensions: { checks: { storage: { status: 'down', message: 'connection refused' } } },
  })
  async ready(): Promise<HealthCheckResult> {
    const { dependency } = this.relay;
    try {
      return await this.health.check([
        () => this.answers('storage', () => this.chats.findChat({ tenantId: OPEN_TENANT_ID, chatId: PROBE_CHAT_ID })),
        ...(dependency ? [() => this.answers(dependency, () => this.relay.checkReachable())] : []),
        async () => {
          const shutdown = this.indicators.check('shutdown');
          return this.shutdown.isShuttingDown ? shutdown.down({ message: 'shutting down' }) : shutdown.up();
        },
        async () => this.indicators.check('llm').up({ provider: this.llm.name }),
      ]);
    } catch (error) {
      if (error instanceof ServiceUnavailableException) {
        const result = error.getResponse() as HealthCheckResult;
        throw new NotReadyError(result.error ?? {});
      }
      throw error;
    }
  }

  /** The check `key`: up when `probe` resolves, else down with why. */
  private async answers(key: string, probe: () => Promise<unknown>) {
    const check = this.indicators.check(key);
    try {
      await probe();
      return check.up();
    } catch (error) {
      return check.down({ message: messageOf(error) });
    }
  }
}
