import { Module } from '@nestjs/common';
import { llmConfig, LlmConfig } from '../config/llm.config';
import { ConcurrencyLimitedLlmProvider } from './concurrency-limited-llm.provider';
import { LlmCallMeter } from './llm-call-meter';
import { LlmProvider } from './llm-provider';
import { OfflineLlmProvider } from './offline-llm.provider';
import { OpenAiLlmProvider } from './openai-llm.provider';
import { TokenCounter } from './token-counter';

/**
 * Binds the {@link LlmProvider} token from LLM_PROVIDER, behind the LLM_MAX_CONCURRENCY limit, and
 * meters its calls ({@link LlmCallMeter}, on the global Metrics).
 */
@Module({
  providers: [
    TokenCounter,
    LlmCallMeter,
    {
      provide: LlmProvider,
      inject: [llmConfig.KEY, TokenCounter],
      useFactory: (config: LlmConfig, tokens: TokenCounter): LlmProvider => {
        const provider =
          config.provider === 'openai'
            ? new OpenAiLlmProvider({
                apiKey: config.openAiApiKey,
                baseUrl: config.openAiBaseUrl,
                timeoutMs: config.timeoutMs,
                maxRetries: config.maxRetries,
              })
            : new OfflineLlmProvider(tokens);
        return new ConcurrencyLimitedLlmProvider(provider, config.maxConcurrency);
      },
    },
  ],
  exports: [LlmProvider, TokenCounter, LlmCallMeter],
})
export class LlmModule {}
