import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { knownModelFamily } from '../config/model-context-windows';

/**
 * The `model` label of a chat's model. A client names any model it likes for its chat, and each
 * label value is a series of its own, so only models the operator knows are named: the default
 * model (LLM_MODEL) as it is, a well-known one by its family (`gpt-4o` for `gpt-4o-mini`), any
 * other as `other`.
 */
export function modelLabelOf(model: string, defaultModel: string): string {
  if (model === defaultModel) return model;
  return knownModelFamily(model) ?? 'other';
}

/** The service's Prometheus instruments, in one registry per application. */
@Injectable()
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by route template, method and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly llmRequestDuration = new Histogram({
    name: 'llm_request_duration_seconds',
    help: 'LLM calls by provider, model (LLM_MODEL, a known family or other), purpose (turn, title or summary) and outcome (completed, stopped, cancelled or the problem type)',
    labelNames: ['provider', 'model', 'purpose', 'outcome'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });

  readonly llmTokens = new Counter({
    name: 'llm_tokens_total',
    help: 'Tokens the LLM reported, by provider, model (LLM_MODEL, a known family or other), purpose (turn, title or summary) and kind (prompt or completion)',
    labelNames: ['provider', 'model', 'purpose', 'kind'] as const,
    registers: [this.registry],
  });

  readonly turnsInFlight = new Gauge({
    name: 'chat_turns_in_flight',
    help: 'Turns received and not yet answered, including those waiting for their chat',
    registers: [this.registry],
  });

  readonly chatLockWait = new Histogram({
    name: 'chat_lock_wait_seconds',
    help: "Time turns wait for their chat's lock, by outcome: acquired, gave-up (the turn was stopped) or failed",
    labelNames: ['outcome'] as const,
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
