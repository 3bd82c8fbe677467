import { DomainError } from '../common/errors/domain-error';

export class UnauthorizedError extends DomainError {
  readonly kind = 'unauthorized';
  readonly code = 'unauthorized';
  readonly title = 'Missing or invalid API key';

  constructor(reason: 'missing' | 'invalid') {
    super(
      reason === 'missing'
        ? 'This service needs an API key: send it as "Authorization: Bearer <key>".'
        : 'The API key is not valid.',
    );
  }
}
