import { Module } from '@nestjs/common';
import { AppConfig, appConfig } from '../config/app-config';
import { ConcurrencyLimitedLlmProvider } from './concurrency-limited-llm.provider';
import { LlmProvider } from './llm-provider';
import { OfflineLlmProvider } from './offline-llm.provider';
import { OpenAiLlmProvider } from './openai-llm.provider';
import { TokenCounter } from './token-counter';

/** Binds the {@link LlmProvider} token from LLM_PROVIDER, behind the LLM_MAX_CONCURRENCY limit. */
@Module({
  providers: [
    TokenCounter,
    {
      provide: LlmProvider,
      inject: [appConfig.KEY, TokenCounter],
      useFactory: (config: AppConfig, tokens: TokenCounter): LlmProvider => {
        const provider =
          config.llmProvider === 'openai'
            ? new OpenAiLlmProvider({
                apiKey: config.openAiApiKey,
                baseUrl: config.openAiBaseUrl,
                timeoutMs: config.llmTimeoutMs,
                maxRetries: config.llmMaxRetries,
              })
            : new OfflineLlmProvider(tokens);
        return new ConcurrencyLimitedLlmProvider(provider, config.llmMaxConcurrency);
      },
    },
  ],
  exports: [LlmProvider, TokenCounter],
})
export class LlmModule {}
