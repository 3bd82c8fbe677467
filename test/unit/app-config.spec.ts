import { DEFAULT_LLM_MODEL, InvalidConfigError, parseAppConfig } from '../../src/config/app-config';

describe(parseAppConfig.name, () => {
  it('should default to port 3000, in-memory storage and the offline provider', () => {
    expect(parseAppConfig({})).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      llmProvider: 'offline',
      llmModel: DEFAULT_LLM_MODEL,
      llmTimeoutMs: 60_000,
      llmMaxRetries: 2,
      llmContextTokens: undefined,
      llmMaxOutputTokens: 1024,
      storage: { kind: 'memory' },
      logLevel: 'info',
    });
  });

  it.each([{ OPENAI_API_KEY: 'sk-test' }, { OPENAI_BASE_URL: 'http://127.0.0.1:11434/v1' }])(
    'should pick the openai provider when %o is set',
    (env) => {
      expect(parseAppConfig(env).llmProvider).toBe('openai');
    },
  );

  it('should let LLM_PROVIDER=offline win over a configured key', () => {
    expect(parseAppConfig({ OPENAI_API_KEY: 'sk-test', LLM_PROVIDER: 'offline' }).llmProvider).toBe('offline');
  });

  it('should treat empty variables as unset', () => {
    expect(parseAppConfig({ PORT: '', OPENAI_API_KEY: '', LLM_MODEL: ' ' })).toMatchObject({
      port: 3000,
      llmProvider: 'offline',
      llmModel: DEFAULT_LLM_MODEL,
    });
  });

  it.each([
    [{ PORT: '3000x' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ LLM_MAX_RETRIES: '1.5' }, 'LLM_MAX_RETRIES'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    [{ LLM_PROVIDER: 'openai' }, 'LLM_PROVIDER'],
    [{ LLM_CONTEXT_TOKENS: '1000', LLM_MAX_OUTPUT_TOKENS: '1000' }, 'LLM_CONTEXT_TOKENS'],
  ])('should reject %o naming %s in a single line', (env, variable) => {
    const attempt = () => parseAppConfig(env);
    expect(attempt).toThrow(InvalidConfigError);
    expect(attempt).toThrow(variable);
    try {
      attempt();
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });
});
