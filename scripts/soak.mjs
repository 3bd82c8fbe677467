#!/usr/bin/env node
/*
 * npm run soak [-- --duration 60 --clients 32 --chats 16 --storage memory,sqlite,postgres]
 *
 * Runs the built service (npm run build first) against a loopback OpenAI-compatible fake that
 * injects faults at random, drives it with many clients sending plain and streamed turns (some
 * disconnecting mid-reply, every failure retried with its Idempotency-Key, as a careful client
 * does), then reads every chat back and checks its invariants. Exits 1 on any violation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createParser } from 'eventsource-parser';
import { createPostgresSchema } from './support/postgres-schema.mjs';
import { startBuiltService } from './support/built-service.mjs';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    clients: { type: 'string', default: '32' },
    chats: { type: 'string', default: '16' },
    storage: { type: 'string', default: 'memory,sqlite,postgres' },
    postgres: { type: 'string', default: process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const DURATION_MS = Number(args.duration) * 1000;
const CLIENTS = Number(args.clients);
const CHATS = Number(args.chats);
const LLM_TIMEOUT_MS = 1500;
const MAX_ATTEMPTS = 6;
const STUCK_MS = 30_000;

// ── The upstream: an OpenAI-compatible fake that fails on purpose ──────────────────────────────
const FAULTS = [
  ['none', 0.66],
  ['http-500', 0.05],
  ['http-503', 0.05],
  ['http-429', 0.05],
  ['timeout', 0.02],
  ['malformed', 0.04],
  ['cut-before-first-byte', 0.04],
  ['cut-mid-stream', 0.05],
  ['stall-mid-stream', 0.04],
];
const pickFault = () => {
  let roll = Math.random();
  for (const [fault, p] of FAULTS) if ((roll -= p) < 0) return fault;
  return 'none';
};

function startUpstream(injected) {
  const sockets = new Set();
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const request = JSON.parse(body);
    const last = request.messages[request.messages.length - 1].content;
    const reply = `echo: ${last}`;
    const fault = pickFault();
    injected.set(fault, (injected.get(fault) ?? 0) + 1);
    const chunk = (delta, finish = null) =>
      `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: request.model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    switch (fault) {
      case 'http-500':
      case 'http-503':
      case 'http-429':
        res.writeHead(Number(fault.slice(5)), { 'content-type': 'application/json', 'retry-after': '0' });
        return res.end(JSON.stringify({ error: { message: `injected ${fault}`, type: 'server_error' } }));
      case 'timeout':
        return; // never answers; the service's LLM_TIMEOUT_MS gives up
      case 'cut-before-first-byte':
        return req.socket.destroy();
      case 'malformed':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return res.end('data: {"choices": [ not json\n\n');
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const words = reply.match(/\S+\s*/g);
    for (const [i, word] of words.entries()) {
      res.write(chunk(i === 0 ? { role: 'assistant', content: word } : { content: word }));
      if (i === 0 && fault === 'cut-mid-stream') return req.socket.destroy();
      if (i === 0 && fault === 'stall-mid-stream') return; // silent until the idle timeout
      await new Promise((r) => setImmediate(r));
    }
    res.write(chunk({}, 'stop'));
    res.write(
      `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: request.model, choices: [], usage: { prompt_tokens: 10, completion_tokens: words.length, total_tokens: 10 + words.length } })}\n\n`,
    );
    res.end('data: [DONE]\n\n');
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () =>
      ok({
        url: `http://127.0.0.1:${server.address().port}/v1`,
        close: () => {
          for (const socket of sockets) socket.destroy();
          return new Promise((done) => server.close(done));
        },
      }),
    ),
  );
}

// ── Storage for each run ──────────────────────────────────────────────────────────────────────
async function openStorage(kind) {
  if (kind === 'memory') return { env: {}, drop: async () => undefined };
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'konko-soak-'));
    return {
      env: { DATABASE_URL: `sqlite:${join(dir, 'soak.db')}` },
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const schema = await createPostgresSchema(args.postgres, 'konko_soak');
  return { env: { DATABASE_URL: schema.url }, drop: schema.drop };
}

// ── Clients ───────────────────────────────────────────────────────────────────────────────────
const percentile = (sorted, p) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN;

/** One attempt of a turn: what the client learned (acknowledged user message id, done, status). */
async function attempt(baseUrl, chatId, turn, streamed, disconnect) {
  const controller = new AbortController();
  const headers = { 'content-type': 'application/json', 'idempotency-key': turn.key };
  if (streamed) headers.accept = 'text/event-stream';
  const outcome = { acknowledged: null, done: false, status: 0, disconnected: false, stuck: false };
  // A request the service never finishes is a failure of the service, not of the soak.
  const stuckTimer = setTimeout(() => {
    outcome.stuck = true;
    controller.abort();
  }, STUCK_MS);
  try {
    if (disconnect && !streamed) setTimeout(() => controller.abort(), Math.random() * 30).unref();
    const response = await fetch(`${baseUrl}/chats/${chatId}/messages`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ content: turn.content }),
      signal: controller.signal,
    });
    outcome.status = response.status;
    if (!streamed || response.status !== 200) {
      const body = await response.json();
      if (response.status === 201) {
        outcome.acknowledged = body.userMessage.id;
        outcome.done = true;
      } else if (body.userMessage) outcome.acknowledged = body.userMessage.id;
      outcome.retryAfter = Number(response.headers.get('retry-after') ?? 0);
      return outcome;
    }
    const parser = createParser({
      onEvent: ({ event, data }) => {
        const payload = JSON.parse(data);
        if (event === 'user_message') outcome.acknowledged = payload.id;
        if (event === 'assistant_message') outcome.done = true;
        if (event === 'delta' && disconnect) controller.abort();
      },
    });
    const decoder = new TextDecoder();
    for await (const bytes of response.body) {
      parser.feed(decoder.decode(bytes, { stream: true }));
      // Leave at once: undici's body iterator can miss an abort that races the body's end.
      if (controller.signal.aborted) {
        outcome.disconnected = true;
        break;
      }
    }
  } catch (error) {
    if (error.name !== 'AbortError') throw error;
    outcome.disconnected = true;
  } finally {
    clearTimeout(stuckTimer);
  }
  return outcome;
}

async function runClient(baseUrl, chatIds, clientNo, deadline, stats, turns) {
  for (let n = 0; Date.now() < deadline; n++) {
    const chatId = chatIds[Math.floor(Math.random() * chatIds.length)];
    const turn = {
      chatId,
      key: `soak-${clientNo}-${n}`,
      content: `client ${clientNo} turn ${n}`,
      acknowledged: new Set(),
      done: false,
    };
    turns.push(turn);
    const started = performance.now();
    for (let i = 0; i < MAX_ATTEMPTS && !turn.done; i++) {
      const streamed = Math.random() < 0.5;
      const disconnect = Math.random() < 0.08;
      const outcome = await attempt(baseUrl, chatId, turn, streamed, disconnect);
      stats.requests++;
      if (outcome.stuck) stats.stuck.push(`${turn.key}: no answer within ${STUCK_MS / 1000} s`);
      else if (outcome.disconnected) stats.disconnects++;
      stats.statuses.set(outcome.status, (stats.statuses.get(outcome.status) ?? 0) + 1);
      if (outcome.acknowledged) turn.acknowledged.add(outcome.acknowledged);
      if (outcome.done) {
        turn.done = true;
        stats.latencies.push(performance.now() - started);
      } else if (outcome.status === 409 || outcome.status === 429) {
        await new Promise((r) => setTimeout(r, Math.max(outcome.retryAfter, 0.05) * 1000));
      }
    }
    if (turn.done) stats.turnsDone++;
    else stats.turnsGivenUp++;
  }
}

// ── Invariants ────────────────────────────────────────────────────────────────────────────────
async function readAll(baseUrl, chatId) {
  const messages = [];
  for (let cursor; ;) {
    const page = await (
      await fetch(`${baseUrl}/chats/${chatId}/messages?limit=1000${cursor ? `&cursor=${cursor}` : ''}`)
    ).json();
    messages.push(...page.data);
    if (!page.nextCursor) return messages;
    cursor = page.nextCursor;
  }
}

function checkChat(messages, turnsOfChat, violations) {
  const fail = (what) => violations.push(`chat ${messages[0]?.chatId}: ${what}`);
  messages.forEach((m, i) => m.seq !== i + 1 && fail(`seq ${m.seq} at position ${i + 1}`));
  const byId = new Map(messages.map((m) => [m.id, m]));
  const completedReplies = new Map();
  for (const m of messages.filter((m) => m.role === 'assistant')) {
    const question = byId.get(m.inReplyTo);
    if (!question || question.role !== 'user') fail(`reply ${m.seq} answers no user message`);
    else if (question.seq >= m.seq) fail(`reply ${m.seq} comes before its message ${question.seq}`);
    else if (m.status === 'completed') {
      if (m.content !== `echo: ${question.content}`)
        fail(`reply ${m.seq} was not generated for message ${question.seq}`);
      completedReplies.set(question.id, (completedReplies.get(question.id) ?? 0) + 1);
    }
  }
  for (const [id, count] of completedReplies)
    if (count > 1) fail(`message ${byId.get(id).seq} has ${count} completed replies`);
  for (const turn of turnsOfChat) {
    const stored = messages.filter((m) => m.role === 'user' && m.content === turn.content);
    if (stored.length > 1) fail(`key ${turn.key} stored its message ${stored.length} times`);
    for (const id of turn.acknowledged)
      if (!byId.has(id)) fail(`acknowledged message ${id} of key ${turn.key} is lost`);
    if (turn.acknowledged.size > 1) fail(`key ${turn.key} was acknowledged as ${turn.acknowledged.size} messages`);
    if (turn.done && !completedReplies.has(stored[0]?.id)) fail(`key ${turn.key} completed but has no completed reply`);
  }
}

// ── One run per storage ───────────────────────────────────────────────────────────────────────
async function soak(storageKind) {
  const injected = new Map();
  const upstream = await startUpstream(injected);
  const storage = await openStorage(storageKind);
  const service = await startBuiltService({
    ...storage.env,
    OPENAI_BASE_URL: upstream.url,
    OPENAI_API_KEY: 'soak',
    LLM_TIMEOUT_MS: String(LLM_TIMEOUT_MS),
    LLM_MAX_RETRIES: '1',
    RATE_LIMIT: '0',
    AUTO_TITLE: 'off',
  });
  try {
    const chatIds = [];
    for (let i = 0; i < CHATS; i++)
      chatIds.push((await (await fetch(`${service.base}/chats`, { method: 'POST' })).json()).id);
    const stats = {
      stuck: [],
      requests: 0,
      disconnects: 0,
      turnsDone: 0,
      turnsGivenUp: 0,
      latencies: [],
      statuses: new Map(),
    };
    const turns = [];
    const startedAt = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) =>
        runClient(service.base, chatIds, i, startedAt + DURATION_MS, stats, turns),
      ),
    );
    const seconds = (Date.now() - startedAt) / 1000;
    const violations = [...stats.stuck];
    let stored = 0;
    for (const chatId of chatIds) {
      const messages = await readAll(service.base, chatId);
      stored += messages.length;
      checkChat(
        messages,
        turns.filter((t) => t.chatId === chatId),
        violations,
      );
    }
    const latencies = stats.latencies.sort((a, b) => a - b);
    const faults = [...injected].filter(([f]) => f !== 'none').reduce((sum, [, n]) => sum + n, 0);
    return {
      storage: storageKind,
      seconds: Math.round(seconds),
      turnsDone: stats.turnsDone,
      turnsGivenUp: stats.turnsGivenUp,
      requests: stats.requests,
      upstreamCalls: [...injected.values()].reduce((a, b) => a + b, 0),
      faultsInjected: faults,
      faultsByKind: Object.fromEntries([...injected].filter(([f]) => f !== 'none')),
      clientDisconnects: stats.disconnects,
      statuses: Object.fromEntries([...stats.statuses].sort(([a], [b]) => a - b)),
      messagesStored: stored,
      violations: violations.length,
      violationSamples: violations.slice(0, 10),
      latencyMs: Object.fromEntries(
        [50, 90, 99]
          .map((p) => [`p${p}`, Math.round(percentile(latencies, p))])
          .concat([['max', Math.round(latencies.at(-1) ?? NaN)]]),
      ),
    };
  } finally {
    await service.stop();
    await upstream.close();
    await storage.drop();
  }
}

const results = [];
for (const kind of args.storage.split(',')) {
  process.stdout.write(`soaking ${kind} for ${DURATION_MS / 1000} s with ${CLIENTS} clients on ${CHATS} chats…\n`);
  const result = await soak(kind);
  results.push(result);
  console.log(JSON.stringify(result, null, 2));
}
console.table(
  results.map((r) => ({
    storage: r.storage,
    s: r.seconds,
    'turns done': r.turnsDone,
    'given up': r.turnsGivenUp,
    faults: r.faultsInjected,
    disconnects: r.clientDisconnects,
    violations: r.violations,
    'p50 ms': r.latencyMs.p50,
    'p99 ms': r.latencyMs.p99,
  })),
);
process.exit(results.some((r) => r.violations > 0) ? 1 : 0);
