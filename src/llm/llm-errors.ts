import { DomainError } from '../common/errors/domain-error';

/** Any failure of the upstream LLM. */
export abstract class LlmError extends DomainError {}

export class LlmTimeoutError extends LlmError {
  readonly kind = 'upstream-timeout';
  readonly code = 'llm-timeout';
  readonly title = 'The language model did not answer in time';
}

/** Rate-limited or unavailable upstream, after the configured retries. */
export class LlmUnavailableError extends LlmError {
  readonly kind = 'upstream-unavailable';
  readonly code = 'llm-unavailable';
  readonly title = 'The language model is unavailable';

  constructor(
    message: string,
    override readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export class LlmUpstreamError extends LlmError {
  readonly kind = 'upstream-failed';
  readonly code = 'llm-failed';
  readonly title = 'The language model failed';
}
