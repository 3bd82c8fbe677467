import { Injectable, Logger } from '@nestjs/common';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { Metrics, modelLabelOf } from '../metrics/metrics';
import { LlmError, LlmUpstreamError } from './llm-errors';
import { countedUsage, LlmProvider, LlmReply, LlmRequest, LlmUsage } from './llm-provider';

/**
 * What an LLM call was for, its `purpose` label: a chat's `turn`, a chat's automatic `title`
 * (AUTO_TITLE=llm), or the abstract of a chat's `summary`.
 */
export type LlmCallPurpose = 'turn' | 'title' | 'summary';

/** What a turn reports for a failure that is no LLM error. */
const UNEXPECTED_FAILURE: LlmUpstreamError['code'] = 'llm-failed';

/**
 * The one place that observes LLM calls: their duration and tokens for the metrics, and a debug
 * line, so that the metrics count every call the service makes, whatever it was for.
 */
@Injectable()
export class LlmCallMeter {
  private readonly logger = new Logger(LlmCallMeter.name);

  constructor(
    private readonly metrics: Metrics,
    private readonly llm: LlmProvider,
    @llmConfig.inject() private readonly llmSettings: LlmConfig,
  ) {}

  /**
   * One call ended, begun at `startedAt` (by `performance.now()`). `model` is the one asked for; its
   * label is bounded by {@link modelLabelOf}. Positional, so that a turn pays only for its labels.
   */
  observe(
    purpose: LlmCallPurpose,
    chatId: string,
    model: string,
    startedAt: number,
    outcome: string,
    usage: LlmUsage | null,
    requestId?: string,
  ): void {
    const provider = this.llm.name;
    const label = modelLabelOf(model, this.llmSettings.defaultModel);
    const seconds = (performance.now() - startedAt) / 1000;
    this.metrics.llmRequestDuration.observe({ provider, model: label, purpose, outcome }, seconds);
    // A counter refuses a negative count, which would fail the call: such counts are not counted.
    const counted = countedUsage(usage);
    if (counted) {
      this.metrics.llmTokens.inc({ provider, model: label, purpose, kind: 'prompt' }, counted.promptTokens);
      this.metrics.llmTokens.inc({ provider, model: label, purpose, kind: 'completion' }, counted.completionTokens);
    }
    // A log line is no series: it names the model asked for. Titles and abstracts name no request.
    this.logger.debug({
      msg: 'LLM call ended',
      req: requestId === undefined ? undefined : { id: requestId },
      chatId,
      purpose,
      provider,
      model,
      outcome,
      seconds,
      usage,
    });
  }

  /**
   * `LlmProvider.complete`, observed. A failure's outcome is its problem type, or `cancelled` when
   * the request's signal cut it off.
   */
  async complete(purpose: LlmCallPurpose, chatId: string, request: LlmRequest): Promise<LlmReply> {
    const startedAt = performance.now();
    let reply: LlmReply;
    try {
      reply = await this.llm.complete(request);
    } catch (error) {
      const outcome = request.signal?.aborted
        ? 'cancelled'
        : error instanceof LlmError
          ? error.code
          : UNEXPECTED_FAILURE;
      this.observe(purpose, chatId, request.model, startedAt, outcome, null);
      throw error;
    }
    this.observe(purpose, chatId, request.model, startedAt, 'completed', reply.usage);
    return reply;
  }
}
