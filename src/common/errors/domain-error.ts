/**
 * What kind of failure a domain error is. The HTTP edge (the problem-details filter) maps each
 * kind to a status; services never deal in HTTP.
 */
export type ErrorKind =
  /** The caller did not prove who it is (no or a wrong API key). */
  | 'unauthorized'
  | 'not-found'
  | 'invalid'
  | 'conflict'
  | 'upstream-timeout'
  | 'upstream-unavailable'
  | 'upstream-failed'
  /** The caller must slow down (too many requests or turns waiting). */
  | 'too-many'
  /** The service itself cannot serve right now (not ready, shutting down). */
  | 'unavailable'
  /** The client went away before the answer; nobody reads the status. */
  | 'client-closed';

/** A field-level validation failure, as shown in a problem document's `errors[]`. */
export interface FieldError {
  field: string;
  message: string;
}

export abstract class DomainError extends Error {
  abstract readonly kind: ErrorKind;
  /** Short slug naming the problem type, e.g. `chat-not-found`. */
  abstract readonly code: string;
  /** Human title of the problem type (the same for every occurrence). */
  abstract readonly title: string;
  /** Seconds the client should wait before retrying, when known. */
  readonly retryAfterSeconds?: number;

  /** Extension members for the problem document. */
  extensions(): Record<string, unknown> {
    return {};
  }
}

/** The request's data breaks the contract's rules (422 with `errors[]`). */
export class RequestValidationError extends DomainError {
  readonly kind = 'invalid';
  readonly code = 'validation-failed';
  readonly title = 'Request validation failed';

  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => `${e.field}: ${e.message}`).join('; '));
  }

  override extensions() {
    return { errors: this.errors };
  }
}
