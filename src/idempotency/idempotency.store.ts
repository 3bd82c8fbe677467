/** Where one Idempotency-Key applies: its caller, its route and (for chat routes) its chat. */
export interface IdempotencyScope {
  tenantId: string;
  /** The route template, e.g. `POST /chats/{chatId}/messages`. */
  route: string;
  /** The chat of a chat route; '' for a route of no chat. */
  chatId: string;
  key: string;
}

/** What a request holding an Idempotency-Key should do, by what earlier requests with it left. */
export type IdempotencyClaim =
  /** The key is new (or expired): run the request; it now holds the key. */
  | { kind: 'new' }
  /** An earlier attempt stopped before it finished: run again from what it recorded; it holds the key. */
  | { kind: 'resume'; progress: string | null }
  /** An earlier attempt finished: answer what it answered. */
  | { kind: 'replay'; response: string }
  /** An earlier attempt is still running. */
  | { kind: 'in-progress' }
  /** The key was used with another request body. */
  | { kind: 'mismatch' };

export interface ClaimOptions {
  /** Who claims: every later write for the claim names it, so a holder that lost the key changes nothing. */
  holder: string;
  /** Identifies the request body; a repeat with another one is a mismatch. */
  fingerprint: string;
  /** How long the key is kept, counted from its first use. */
  ttlMs: number;
  /** How long the claim of a running request lasts unless renewed (a crashed holder lets go). */
  leaseMs: number;
  now: number;
}

/**
 * The storage port and DI token for Idempotency-Key records, bound with the ChatRepository to
 * the same storage. Each record is a small state machine: running (held by one request, for a
 * lease it renews) → stopped (failed; may carry progress to resume from) or completed (carries the
 * response). `claim` decides atomically, so of two requests racing with one key one holds it; the
 * writes after it apply only while the caller still holds it (a lapsed lease passes the key on).
 * A running record under a live lease is never taken over or expired. Progress and responses are
 * opaque strings to the store.
 */
export abstract class IdempotencyStore {
  abstract claim(scope: IdempotencyScope, options: ClaimOptions): Promise<IdempotencyClaim>;

  /** Extends a running claim's lease. */
  abstract renew(scope: IdempotencyScope, holder: string, leaseUntil: number): Promise<void>;

  /**
   * Records how far the running request got, for a repeat to resume from if it stops; false when
   * the caller no longer holds the key (its lease lapsed and passed it on), and nothing is recorded.
   */
  abstract recordProgress(scope: IdempotencyScope, holder: string, progress: string): Promise<boolean>;

  /** The request finished: repeats replay `response` until the key expires. */
  abstract complete(scope: IdempotencyScope, holder: string, response: string): Promise<void>;

  /** The request stopped without finishing: the next repeat resumes (or starts afresh without progress). */
  abstract release(scope: IdempotencyScope, holder: string): Promise<void>;

  /** Forgets keys that expired by `now`, but none still running under a live lease; returns how many. */
  abstract deleteExpired(now: number): Promise<number>;
}
