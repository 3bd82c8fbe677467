import { DomainError } from '../common/errors/domain-error';
import { IDEMPOTENCY_KEY_HEADER } from './idempotency-key.decorator';

/** The key was first used with another request body. */
export class IdempotencyKeyReusedError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'idempotency-key-reused';
  readonly title = 'Idempotency-Key used with another request';

  constructor() {
    super(`This ${IDEMPOTENCY_KEY_HEADER} was first used with another request body; use a new key for a new request.`);
  }

  override extensions() {
    return { errors: [{ field: IDEMPOTENCY_KEY_HEADER, message: 'already used with another request body' }] };
  }
}

/** The first request with this key is still running. */
export class IdempotencyKeyInUseError extends DomainError {
  readonly kind = 'conflict';
  readonly code = 'idempotency-key-in-use';
  readonly title = 'A request with this Idempotency-Key is still running';
  override readonly retryAfterSeconds = 1;

  constructor() {
    super(
      `The first request with this ${IDEMPOTENCY_KEY_HEADER} is still running; repeat it after it ends to get its outcome.`,
    );
  }
}
