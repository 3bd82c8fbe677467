import { parseAuthConfig } from '../../src/config/auth.config';
import { Environment } from '../../src/config/env';
import { parseHttpConfig } from '../../src/config/http.config';
import { parseLimitsConfig } from '../../src/config/limits.config';
import { parseLlmConfig } from '../../src/config/llm.config';
import { parseLoggingConfig } from '../../src/config/logging.config';
import { parseStorageConfig } from '../../src/config/storage.config';

/** Every configuration slice, parsed from `env` exactly as at start-up. */
export function configFrom(env: Environment = {}) {
  return {
    http: parseHttpConfig(env),
    llm: parseLlmConfig(env),
    storage: parseStorageConfig(env),
    limits: parseLimitsConfig(env),
    auth: parseAuthConfig(env),
    logging: parseLoggingConfig(env),
  };
}
