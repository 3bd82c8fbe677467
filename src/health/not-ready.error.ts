import { DomainError } from '../common/errors/domain-error';

export class NotReadyError extends DomainError {
  readonly kind = 'unavailable';
  readonly code = 'not-ready';
  readonly title = 'The service is not ready';

  constructor(readonly checks: Record<string, unknown>) {
    super(`Not ready: ${Object.keys(checks).join(', ')} failing.`);
  }

  override extensions() {
    return { checks: this.checks };
  }
}
