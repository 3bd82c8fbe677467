import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { SkipRateLimit } from '../common/http/skip-rate-limit.decorator';
import { Metrics } from './metrics';

@ApiTags('operations')
@Controller('metrics')
@SkipRateLimit()
export class MetricsController {
  constructor(private readonly metrics: Metrics) {}

  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics' })
  @ApiOkResponse({
    description: 'Prometheus text exposition format',
    content: {
      'text/plain': {
        schema: { type: 'string' },
        example:
          '# HELP chat_turns_in_flight Turns received and not yet answered\n# TYPE chat_turns_in_flight gauge\nchat_turns_in_flight 0\n',
      },
    },
  })
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
