import { authConfig } from './auth.config';
import { Environment } from './env';
import { httpConfig } from './http.config';
import { limitsConfig } from './limits.config';
import { llmConfig } from './llm.config';
import { loggingConfig } from './logging.config';
import { storageConfig } from './storage.config';

/** Every slice of the configuration, one per concern; `ConfigModule` loads them all. */
export const CONFIG_SLICES = [httpConfig, llmConfig, storageConfig, limitsConfig, authConfig, loggingConfig];

/** Parses every slice, so a bad value stops start-up before anything else runs (InvalidConfigError). */
export function parseEveryConfigSlice(env: Environment): void {
  for (const slice of CONFIG_SLICES) slice.parse(env);
}
