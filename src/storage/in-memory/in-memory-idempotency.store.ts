import { Injectable } from '@nestjs/common';
import {
  ClaimOptions,
  IdempotencyClaim,
  IdempotencyScope,
  IdempotencyStore,
} from '../../idempotency/idempotency.store';

interface IdempotencyRecord {
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

  async claim(scope: IdempotencyScope, { fingerprint, ttlMs, leaseMs, now }: ClaimOptions): Promise<IdempotencyClaim> {
    const id = recordKey(scope);
    const record = this.records.get(id);
    const running = (progress: string | null): IdempotencyRecord => ({
      fingerprint,
      state: 'running',
      progress,
      response: null,
      leaseUntil: now + leaseMs,
      expiresAt: record && record.expiresAt > now ? record.expiresAt : now + ttlMs,
    });
    if (!record || record.expiresAt <= now) {
      this.records.set(id, running(null));
      return { kind: 'new' };
    }
    if (record.fingerprint !== fingerprint) return { kind: 'mismatch' };
    if (record.state === 'completed') return { kind: 'replay', response: record.response! };
    if (record.state === 'running' && record.leaseUntil > now) return { kind: 'in-progress' };
    this.records.set(id, running(record.progress));
    return { kind: 'resume', progress: record.progress };
  }

  async renew(scope: IdempotencyScope, leaseUntil: number): Promise<void> {
    const record = this.records.get(recordKey(scope));
    if (record?.state === 'running') record.leaseUntil = leaseUntil;
  }

  async recordProgress(scope: IdempotencyScope, progress: string): Promise<void> {
    const record = this.records.get(recordKey(scope));
    if (record) record.progress = progress;
  }

  async complete(scope: IdempotencyScope, response: string): Promise<void> {
    const record = this.records.get(recordKey(scope));
    if (record) Object.assign(record, { state: 'completed', response });
  }

  async release(scope: IdempotencyScope): Promise<void> {
    const id = recordKey(scope);
    const record = this.records.get(id);
    if (record?.state !== 'running') return;
    if (record.progress === null) this.records.delete(id);
    else record.state = 'stopped';
  }

  async deleteExpired(now: number): Promise<number> {
    let deleted = 0;
    for (const [id, record] of this.records) {
      if (record.expiresAt <= now) {
        this.records.delete(id);
        deleted++;
      }
    }
    return deleted;
  }
}
