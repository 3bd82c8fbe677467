#!/usr/bin/env node
/*
 * npm run soak [-- --duration 60 --clients 32 --chats 16 --storage memory,sqlite,postgres]
 *
 * Runs the built service (npm run build first) against a loopback OpenAI-compatible fake that
 * injects faults at random, drives it with many clients sending plain and streamed turns, edits
 * and regenerations, and switching branches (some disconnecting mid-reply, every failure retried
 * with its Idempotency-Key, as a careful client does), then reads every chat back and checks its
 * invariants, the message tree's included. Exits 1 on any violation.
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
/** What the upstream's replies name for a message that comes first in its branch. */
const SYSTEM = '(system)';
const MAX_ATTEMPTS = 6;
/** A turn whose key is still in use waits for it (its first request runs on), this many times at most. */
const MAX_WAITS = 40;
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
    const { messages } = request;
    // The reply names the message it answers and the one before it in the context, so the
    // invariants can tell whether the context was the message's own branch.
    const before = messages[messages.length - 2];
    const reply = `echo: ${messages[messages.length - 1].content} after: ${before.role === 'system' ? SYSTEM : before.content}`;
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

/** Reads a `text/event-stream` body, calling `onEvent` with each event; `signal` ends it early. */
async function readEvents(response, onEvent, signal) {
  const parser = createParser({
    onEvent: ({ event, data, id }) => onEvent({ event, data: JSON.parse(data), id }),
  });
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    parser.feed(decoder.decode(bytes, { stream: true }));
    // Leave at once: undici's body iterator can miss an abort that races the body's end.
    if (signal.aborted) return;
  }
}

/**
 * A client that lost its stream resumes it after the last event it saw, by header or query, and
 * checks that what it saw and what it resumed join to the reply exactly.
 */
async function resumeTurn(baseUrl, turn, seen, outcome, stats) {
  const path = `${baseUrl}/chats/${turn.chatId}/stream`;
  const byHeader = Math.random() < 0.5;
  const response = await fetch(byHeader ? path : `${path}?lastEventId=${encodeURIComponent(seen.lastId)}`, {
    headers: byHeader ? { 'last-event-id': seen.lastId } : {},
  });
  stats.resumes++;
  if (response.status !== 200) {
    stats.violations.push(`${turn.key}: a resume after ${seen.lastId} answered ${response.status}`);
    return;
  }
  let deltas = '';
  let resumedDeltas = false;
  await readEvents(
    response,
    ({ event, data }) => {
      if (event === 'delta') {
        deltas += data.content;
        resumedDeltas = true;
      }
      if (event === 'assistant_message') {
        outcome.reply = data.id;
        outcome.done = true;
        // A running turn resumes with every event since: they join exactly. An ended one resumes
        // with its final event alone: what was seen must still begin its reply.
        const joins = resumedDeltas ? seen.deltas + deltas === data.content : data.content.startsWith(seen.deltas);
        if (!joins) stats.violations.push(`${turn.key}: the resumed stream does not join to reply ${data.id}`);
      }
    },
    new AbortController().signal,
  );
}

/** One attempt of a turn: what the client learned (acknowledged message ids, done, status). */
async function attempt(baseUrl, turn, { streamed, disconnect, stop }, stats) {
  const controller = new AbortController();
  const headers = { 'content-type': 'application/json', 'idempotency-key': turn.key };
  if (streamed) headers.accept = 'text/event-stream';
  const outcome = { acknowledged: null, reply: null, done: false, status: 0, disconnected: false, stuck: false };
  // A request the service never finishes is a failure of the service, not of the soak.
  const stuckTimer = setTimeout(() => {
    outcome.stuck = true;
    controller.abort();
  }, STUCK_MS);
  const [path, body] =
    turn.kind === 'regenerate'
      ? [`messages/${turn.messageId}/regenerate`, {}]
      : [
          'messages',
          turn.parentId === undefined ? { content: turn.content } : { content: turn.content, parentId: turn.parentId },
        ];
  const seen = { deltas: '', lastId: null };
  try {
    if (disconnect && !streamed) setTimeout(() => controller.abort(), Math.random() * 30).unref();
    const response = await fetch(`${baseUrl}/chats/${turn.chatId}/${path}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    outcome.status = response.status;
    if (!streamed || response.status !== 200) {
      const body = await response.json();
      if (response.status === 201) {
        outcome.acknowledged = body.userMessage;
        outcome.reply = body.assistantMessage.id;
        outcome.done = true;
      } else if (body.userMessage) outcome.acknowledged = body.userMessage;
      outcome.retryAfter = Number(response.headers.get('retry-after') ?? 0);
      return outcome;
    }
    let stopping;
    await readEvents(
      response,
      ({ event, data, id }) => {
        seen.lastId = id;
        if (event === 'user_message') outcome.acknowledged = data;
        if (event === 'assistant_message') {
          outcome.reply = data.id;
          outcome.done = true;
        }
        if (event !== 'delta') return;
        seen.deltas += data.content;
        if (disconnect) controller.abort();
        if (stop && !stopping) {
          stats.stops++;
          // A stop stops whatever turn of the chat runs when it arrives, this one or another: one
          // answered 202 did so at some time between being sent and being answered.
          const sent = { from: performance.now(), to: Infinity, stopped: true };
          turn.chatStops.push(sent);
          stopping = fetch(`${baseUrl}/chats/${turn.chatId}/stop`, { method: 'POST' })
            .then((r) => {
              sent.stopped = r.status === 202;
              return r.arrayBuffer();
            })
            .finally(() => (sent.to = performance.now()));
        }
      },
      controller.signal,
    );
    await stopping;
  } catch (error) {
    if (error.name !== 'AbortError') throw error;
    outcome.disconnected = true;
  } finally {
    clearTimeout(stuckTimer);
  }
  if (controller.signal.aborted) outcome.disconnected = true;
  if (outcome.disconnected && !outcome.stuck && seen.lastId) await resumeTurn(baseUrl, turn, seen, outcome, stats);
  return outcome;
}

/** What a client does next on a chat: mostly sends, some edits, regenerations and switches. */
function nextTurn(chat, key, content) {
  const roll = Math.random();
  const known = chat.userMessages;
  const pick = () => known[Math.floor(Math.random() * known.length)];
  if (known.length > 0 && roll < 0.1) return { kind: 'edit', key, content, parentId: pick().parentId };
  if (known.length > 0 && roll < 0.2) return { kind: 'regenerate', key, messageId: pick().id };
  return { kind: 'send', key, content };
}

async function runClient(baseUrl, chats, clientNo, deadline, stats, turns) {
  for (let n = 0; Date.now() < deadline; n++) {
    const chat = chats[Math.floor(Math.random() * chats.length)];
    if (chat.userMessages.length > 0 && Math.random() < 0.05) {
      // Switch to another branch, as the playground's ‹ n / m › does.
      const message = chat.userMessages[Math.floor(Math.random() * chat.userMessages.length)];
      const response = await fetch(`${baseUrl}/chats/${chat.id}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ currentMessageId: message.id }),
      });
      await response.arrayBuffer();
      stats.requests++;
      stats.switches++;
      stats.statuses.set(response.status, (stats.statuses.get(response.status) ?? 0) + 1);
      if (response.status !== 200) stats.stuck.push(`switching chat ${chat.id} answered ${response.status}`);
      continue;
    }
    const turn = {
      chatId: chat.id,
      chatStops: chat.stops,
      windows: [],
      ...nextTurn(chat, `soak-${clientNo}-${n}`, `client ${clientNo} turn ${n}`),
      acknowledged: new Set(),
      replies: new Set(),
      done: false,
    };
    turns.push(turn);
    stats.kinds[turn.kind]++;
    const started = performance.now();
    // Waits for a key still in use (409) or a busy chat (429) are not attempts.
    for (let tries = 0, waits = 0; tries < MAX_ATTEMPTS && waits < MAX_WAITS && !turn.done;) {
      const streamed = Math.random() < 0.5;
      const disconnect = Math.random() < 0.08;
      const stop = !disconnect && Math.random() < 0.03;
      const window = [performance.now()];
      const outcome = await attempt(baseUrl, turn, { streamed, disconnect, stop }, stats);
      // Unless it ended, a turn whose client left, or whose key another attempt held (409), may
      // run on until the next attempt.
      const mayRunOn = !outcome.done && (outcome.disconnected || outcome.status === 409);
      turn.windows.push([...window, performance.now(), mayRunOn]);
      stats.requests++;
      if (outcome.stuck) stats.stuck.push(`${turn.key}: no answer within ${STUCK_MS / 1000} s`);
      else if (outcome.disconnected) stats.disconnects++;
      stats.statuses.set(outcome.status, (stats.statuses.get(outcome.status) ?? 0) + 1);
      if (outcome.acknowledged) {
        if (!turn.acknowledged.has(outcome.acknowledged.id) && turn.kind !== 'regenerate') {
          chat.userMessages.push({ id: outcome.acknowledged.id, parentId: outcome.acknowledged.parentId });
        }
        turn.acknowledged.add(outcome.acknowledged.id);
      }
      if (outcome.reply) turn.replies.add(outcome.reply);
      if (outcome.done) {
        turn.done = true;
        stats.latencies.push(performance.now() - started);
      } else if (outcome.status === 409 || outcome.status === 429) {
        waits++;
        await new Promise((r) => setTimeout(r, Math.max(outcome.retryAfter, 0.05 * waits) * 1000));
      } else tries++;
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
      await fetch(`${baseUrl}/chats/${chatId}/messages?branch=all&limit=1000${cursor ? `&cursor=${cursor}` : ''}`)
    ).json();
    messages.push(...page.data);
    if (!page.nextCursor) return messages;
    cursor = page.nextCursor;
  }
}

function checkChat(chat, messages, turnsOfChat, violations) {
  const fail = (what) => violations.push(`chat ${chat.id}: ${what}`);
  messages.forEach((m, i) => m.seq !== i + 1 && fail(`seq ${m.seq} at position ${i + 1}`));
  const byId = new Map(messages.map((m) => [m.id, m]));
  const current = chat.currentMessageId;
  if (messages.length === 0 ? current !== null : !byId.has(current))
    fail(`currentMessageId ${current} is no message of the chat`);
  for (const m of messages) {
    const parent = m.parentId === null ? null : byId.get(m.parentId);
    if (m.parentId !== null && (!parent || parent.seq >= m.seq))
      fail(`message ${m.seq}'s parent is not an earlier message of the chat`);
  }
  const completedReplies = new Map();
  for (const m of messages.filter((m) => m.role === 'assistant')) {
    const question = byId.get(m.inReplyTo);
    if (!question || question.role !== 'user') fail(`reply ${m.seq} answers no user message`);
    else if (m.parentId !== question.id) fail(`reply ${m.seq} does not follow the message it answers`);
    else if (m.status === 'completed') {
      const before = question.parentId === null ? SYSTEM : byId.get(question.parentId)?.content;
      if (m.content !== `echo: ${question.content} after: ${before}`)
        fail(`reply ${m.seq} was not generated for message ${question.seq} in its own branch`);
      completedReplies.set(question.id, (completedReplies.get(question.id) ?? 0) + 1);
    }
  }
  const regenerations = new Map();
  for (const turn of turnsOfChat.filter((t) => t.kind === 'regenerate'))
    regenerations.set(turn.messageId, (regenerations.get(turn.messageId) ?? 0) + 1);
  for (const [id, count] of completedReplies)
    if (count > 1 + (regenerations.get(id) ?? 0))
      fail(`message ${byId.get(id).seq} has ${count} completed replies, more than its turns asked for`);
  for (const turn of turnsOfChat) {
    // A stop that stopped a turn of the chat while this one may have run may have stopped it: during
    // an attempt, or after one its client left (or found its key held) until the next.
    const running = turn.windows.map(([from, to, mayRunOn], i) => [
      from,
      mayRunOn ? (turn.windows[i + 1]?.[0] ?? Infinity) : to,
    ]);
    const stopped = turn.chatStops.some(
      (stop) => stop.stopped && running.some(([from, to]) => stop.from <= to && from <= stop.to),
    );
    if (turn.replies.size > 1) fail(`key ${turn.key} was answered with ${turn.replies.size} replies`);
    for (const id of turn.replies) {
      const reply = byId.get(id);
      if (!reply) fail(`acknowledged reply ${id} of key ${turn.key} is lost`);
      // A stopped turn keeps what was generated as an incomplete reply.
      else if (reply.status !== 'completed' && !stopped) fail(`reply ${id} of key ${turn.key} is ${reply.status}`);
    }
    for (const id of turn.acknowledged)
      if (!byId.has(id)) fail(`acknowledged message ${id} of key ${turn.key} is lost`);
    if (turn.acknowledged.size > 1) fail(`key ${turn.key} was acknowledged as ${turn.acknowledged.size} messages`);
    if (turn.kind === 'regenerate') continue;
    const stored = messages.filter((m) => m.role === 'user' && m.content === turn.content);
    if (stored.length > 1) fail(`key ${turn.key} stored its message ${stored.length} times`);
    if (turn.done && !stopped && !completedReplies.has(stored[0]?.id))
      fail(`key ${turn.key} completed but has no completed reply`);
    if (turn.kind === 'edit' && stored[0] && stored[0].parentId !== turn.parentId)
      fail(`edit ${turn.key} does not follow the message it was sent after`);
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
    const chats = [];
    for (let i = 0; i < CHATS; i++) {
      const { id } = await (await fetch(`${service.base}/chats`, { method: 'POST' })).json();
      chats.push({ id, userMessages: [], stops: [] });
    }
    const stats = {
      stuck: [],
      requests: 0,
      switches: 0,
      resumes: 0,
      stops: 0,
      violations: [],
      kinds: { send: 0, edit: 0, regenerate: 0 },
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
        runClient(service.base, chats, i, startedAt + DURATION_MS, stats, turns),
      ),
    );
    const seconds = (Date.now() - startedAt) / 1000;
    const violations = [...stats.stuck, ...stats.violations];
    let stored = 0;
    for (const { id } of chats) {
      const chat = await (await fetch(`${service.base}/chats/${id}`)).json();
      const messages = await readAll(service.base, id);
      stored += messages.length;
      checkChat(
        chat,
        messages,
        turns.filter((t) => t.chatId === id),
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
      turnsByKind: stats.kinds,
      branchSwitches: stats.switches,
      resumes: stats.resumes,
      stops: stats.stops,
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
    edits: r.turnsByKind.edit,
    regenerations: r.turnsByKind.regenerate,
    switches: r.branchSwitches,
    resumes: r.resumes,
    stops: r.stops,
    'given up': r.turnsGivenUp,
    faults: r.faultsInjected,
    disconnects: r.clientDisconnects,
    violations: r.violations,
    'p50 ms': r.latencyMs.p50,
    'p99 ms': r.latencyMs.p99,
  })),
);
process.exit(results.some((r) => r.violations > 0) ? 1 : 0);
