import { DomainError } from './domain-error';

/**
 * The database could not be reached, or ended the connection under a statement (a restart, a
 * failover, too many connections, a full disk, another process's write lock held too long): the
 * request may well succeed once it is back. Its driver's error is the `cause`, for the logs.
 */
export class StorageUnavailableError extends DomainError {
  readonly kind = 'unavailable';
  readonly code = 'storage-unavailable';
  readonly title = 'The database is unreachable';
  override readonly retryAfterSeconds = 2;

  constructor(cause: unknown) {
    super('The service cannot reach its database right now. Retry shortly.', { cause });
  }
}
