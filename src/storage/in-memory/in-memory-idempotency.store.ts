import { Injectable } from '@nestjs/common';
import {
  ClaimOptions,
  IdempotencyClaim,
  IdempotencyScope,
  IdempotencyStore,
} from '../../idempotency/idempotency.store';

interface IdempotencyRecord {
  holder: string;
  fingerprint: string;
  state: 'running' | 'stopped' | 'completed';
  progress: string | null;
  response: string | null;
  leaseUntil: number;
  expiresAt: number;
}

const recordKey = ({ tenantId, route, chatId, key }: IdempotencyScope) =>
  JSON.stringify([tenantId, route, chatId, key]);

/** Idempotency records in process memory, beside the in-memory chats. Each method is atomic (no await). */
@Injectable()
export class InMemoryIdempotencyStore extends IdempotencyStore {
  private readonly records = new Map<string, IdempotencyRecord>();

  async claim(
    scope: IdempotencyScope,
    { holder, fingerprint, ttlMs, leaseMs, now }: ClaimOptions,
  ): Promise<IdempotencyClaim> {
    const id = recordKey(scope);
    const record = this.records.get(id);
    const running = (progress: string | null): IdempotencyRecord => ({
      holder,
      fingerprint,
      state: 'running',
      progress,
      response: null,
      leaseUntil: now + leaseMs,
      expiresAt: record && record.expiresAt > now ? record.expiresAt : now + ttlMs,
    });
    const live = record?.state === 'running' && record.leaseUntil > now;
    if (!record || (record.expiresAt <= now && !live)) {
      this.records.set(id, running(null));
      return { kind: 'new' };
    }
    if (record.fingerprint !== fingerprint) return { kind: 'mismatch' };
    if (record.state === 'completed') return { kind: 'replay', response: record.response! };
    if (live) return { kind: 'in-progress' };
    this.records.set(id, running(record.progress));
    return { kind: 'resume', progress: record.progress };
  }

  /** The record while `holder` holds it. */
  private held(scope: IdempotencyScope, holder: string): IdempotencyRecord | undefined {
    const record = this.records.get(recordKey(scope));
    return record?.state === 'running' && record.holder === holder ? record : undefined;
  }

  async renew(scope: IdempotencyScope, holder: string, leaseUntil: number): Promise<void> {
    const record = this.held(scope, holder);
    if (record) record.leaseUntil = leaseUntil;
  }

  async recordProgress(scope: IdempotencyScope, holder: string, progress: string): Promise<boolean> {
    const record = this.held(scope, holder);
    if (record) record.progress = progress;
    return record !== undefined;
  }

  async complete(scope: IdempotencyScope, holder: string, response: string): Promise<void> {
    const record = this.held(scope, holder);
    if (record) Object.assign(record, { state: 'completed', response });
  }

  async release(scope: IdempotencyScope, holder: string): Promise<void> {
    const id = recordKey(scope);
    const record = this.held(scope, holder);
    if (!record) return;
    if (record.progress === null) this.records.delete(id);
    else record.state = 'stopped';
  }

  async deleteExpired(now: number): Promise<number> {
    let deleted = 0;
    for (const [id, record] of this.records) {
      if (record.expiresAt <= now && !(record.state === 'running' && record.leaseUntil > now)) {
        this.records.delete(id);
        deleted++;
      }
    }
    return deleted;
  }
}
