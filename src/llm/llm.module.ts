import { Module } from '@nestjs/common';
import { AppConfig, appConfig } from '../config/app-config';
import { LlmProvider } from './llm-provider';
import { OfflineLlmProvider } from './offline-llm.provider';
import { OpenAiLlmProvider } from './openai-llm.provider';
import { TokenCounter } from './token-counter';

/** Binds the {@link LlmProvider} token from LLM_PROVIDER. */
@Module({
  providers: [
    TokenCounter,
    {
      provide: LlmProvider,
      inject: [appConfig.KEY, TokenCounter],
      useFactory: (config: AppConfig, tokens: TokenCounter): LlmProvider =>
        config.llmProvider === 'openai'
          ? new OpenAiLlmProvider({
              apiKey: config.openAiApiKey,
              baseUrl: config.openAiBaseUrl,
              timeoutMs: config.llmTimeoutMs,
              maxRetries: config.llmMaxRetries,
            })
          : new OfflineLlmProvider(tokens),
    },
  ],
  exports: [LlmProvider, TokenCounter],
})
export class LlmModule {}
