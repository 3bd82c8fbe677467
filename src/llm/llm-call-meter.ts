import { Injectable, Logger } from '@nestjs/common';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { Metrics, modelLabelOf } from '../metrics/metrics';
import { LlmProvider, LlmUsage } from './llm-provider';

/** The one place that observes LLM calls: their duration and tokens for the metrics, and a debug line. */
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
    this.metrics.llmRequestDuration.observe({ provider, model: label, outcome }, seconds);
    if (usage) {
      this.metrics.llmTokens.inc({ provider, model: label, kind: 'prompt' }, usage.promptTokens);
      this.metrics.llmTokens.inc({ provider, model: label, kind: 'completion' }, usage.completionTokens);
    }
    // A log line is no series: it names the model asked for.
    this.logger.debug({
      msg: 'LLM call ended',
      req: { id: requestId },
      chatId,
      provider,
      model,
      outcome,
      seconds,
      usage,
    });
  }
}
