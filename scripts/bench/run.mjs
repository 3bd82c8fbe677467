// `npm run bench`: the built service on one core, the loopback upstream and the load generators on
// the other, one table on stdout, the same figures as JSON (bench-results.json, or --out=<file>).
// Every target is a ratio to a floor measured in the same run (the bare proxy, the same through the
// `openai` client), since absolute figures hold on no two machines.
// `--smoke` runs every workload briefly, to show the harness works; it exits non-zero when the
// harness breaks (a request fails, a process does not start), never because a target is missed.
// `--only=memory:W1,sqlite` measures only those (the bare server always runs); BENCH_CPU_PROF=<dir>
// writes CPU and allocation profiles of the service's timed W1 and W3 runs there (steady state, not
// start-up) and prints where its time and allocations went; BENCH_W5_MESSAGES changes W5's 100,000.
import autocannon from 'autocannon';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { MAIN_JS, NODE_FLAGS, serviceEnv } from '../support/built-service.mjs';
import { createPostgresSchema } from '../support/postgres-schema.mjs';
import { summarizeAllocations, summarize as summarizeProfile } from './profile-summary.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const args = process.argv.slice(2);
const SMOKE = args.includes('--smoke');
const OUT = resolve(args.find((a) => a.startsWith('--out='))?.slice(6) ?? join(ROOT, 'bench-results.json'));
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
/** The `redis` target: the in-memory service with REDIS_URL, which every running turn's events then go through. */
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/12';

/** Sizes of each workload; the smoke run only shows that every part works. */
const SIZE = SMOKE
  ? {
      w1Seconds: 0.5,
      w2Seconds: 0.5,
      w3Chats: 20,
      w4Sizes: [10, 40, 80, 160],
      w4Turns: 3,
      w4Branches: 4,
      w8Small: 100,
      w8Large: 1_000,
      w8Rounds: 5,
      w5Messages: 500,
      w6Turns: 3,
      w7Messages: 200,
    }
  : {
      w1Seconds: 10,
      w2Seconds: 10,
      w3Chats: 500,
      // The first size is a short chat, the cost of a full window beside it; the others all fill it.
      w4Sizes: [10, 1_000, 5_000, 20_000],
      w4Turns: 100,
      // W4b: a chat of this many branches of ten messages each, beside a line of as many messages.
      w4Branches: 100,
      // W8: search in a tenant of each size (the large one imported 10,000 messages a chat).
      w8Small: 1_000,
      w8Large: 100_000,
      w8Rounds: 200,
      w5Messages: Number(process.env.BENCH_W5_MESSAGES ?? 100_000),
      w6Turns: 200,
      w7Messages: 5_000,
    };
const W1_CLIENTS = 64;
/** W1's rounds (see w1InRounds), over its w1Seconds. */
const W1_ROUNDS = 5;
const W2_CLIENTS = 16;
const W2_UPSTREAM_MS = 100;
const W3_UPSTREAM_MS = 1_000;
const W6_UPSTREAM_MS = 20;
/** W7's timed imports, after one to warm up; the median counts. */
const W7_IMPORTS = 3;
/** What each setting of the upstream starts from, so none outlives the workload that set it. */
const DEFAULT_UPSTREAM = { latencyMs: 0, replyChars: 60, pieces: 12, interTokenMs: 0, ttftTags: false };
const MESSAGE = 'How should we size the connection pool of a service whose traffic comes in bursts?';
const MESSAGE_200 = MESSAGE.repeat(3).slice(0, 200);

// ---------------------------------------------------------------- processes and cores

const CORES = cpus().length;
const PINNED = CORES >= 2 && hasTaskset();
const SERVICE_CORE = '0';
const LOAD_CORE = '1';

function hasTaskset() {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * While W1 runs, the local PostgreSQL and Redis servers the targets use go to the load's core, as
 * the upstream does, so that the service's core is the service's alone and its throughput is
 * its own (where they share a machine with the service, they stand in for servers of their own).
 * Their cores are given back after W1, also when the bench is interrupted. The other workloads
 * time single turns on an idle machine and leave them where they are. Servers elsewhere, or
 * processes this user may not move, are left as they are.
 */
const movedServers = [];
/** How many server processes W1 moved, for the table's heading. */
let serversMovedInW1 = 0;

function moveLocalServers() {
  if (!PINNED) return;
  const local = (url) => ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(url).hostname);
  const names = [...(local(POSTGRES_URL) ? ['postgres'] : []), ...(local(REDIS_URL) ? ['redis-server'] : [])];
  for (const name of names) {
    let pids = [];
    try {
      pids = execFileSync('pgrep', ['-x', name], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch {
      continue; // none running here
    }
    for (const pid of pids) {
      try {
        const mask = /: *([0-9a-f]+)$/.exec(execFileSync('taskset', ['-p', pid], { encoding: 'utf8' }).trim())[1];
        execFileSync('taskset', ['-a', '-cp', LOAD_CORE, pid], { stdio: 'ignore' });
        movedServers.push({ pid, mask });
      } catch {
        // gone, or not ours to move
      }
    }
  }
  serversMovedInW1 = movedServers.length;
  if (movedServers.length > 0) {
    process.stderr.write(
      `  local database and Redis processes on core ${LOAD_CORE} during W1 (${movedServers.length})\n`,
    );
  }
}

function restoreLocalServers() {
  for (const { pid, mask } of movedServers.splice(0)) {
    try {
      execFileSync('taskset', ['-a', '-p', mask, pid], { stdio: 'ignore' });
    } catch {
      // gone meanwhile
    }
  }
}

function spawnOn(core, command, argv, options) {
  return PINNED ? spawn('taskset', ['-c', core, command, ...argv], options) : spawn(command, argv, options);
}

const children = new Set();

/**
 * A helper on the load's core; with `probeDir`, on the service's with the probe preloaded, as a
 * service is. A server measured against the service (`measured`, or with a probe) runs with the
 * service's Node flags.
 */
async function startHelper(script, argv = [], { probeDir, measured = Boolean(probeDir) } = {}) {
  const nodeArgs = [
    ...(measured ? NODE_FLAGS : []),
    ...(probeDir ? ['--expose-gc', '--import', join(ROOT, 'scripts/bench/service-probe.mjs')] : []),
  ];
  const child = spawnOn(
    probeDir ? SERVICE_CORE : LOAD_CORE,
    process.execPath,
    [...nodeArgs, join(ROOT, 'scripts/bench', script), ...argv],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: probeDir ? { ...process.env, BENCH_PROBE_DIR: probeDir } : process.env,
    },
  );
  children.add(child);
  let output = '';
  const port = await new Promise((resolvePort, reject) => {
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /listening (\d+)/.exec(output);
      if (match) resolvePort(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}: ${output}`)));
  });
  return {
    child,
    base: `http://127.0.0.1:${port}`,
    stop: () => stopChild(child),
    ...(probeDir && { probe: probeOf(child, probeDir) }),
  };
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const deadline = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(deadline);
  children.delete(child);
}

/** The environment of a storage target: `redis` is memory storage with REDIS_URL. */
const storeEnv = (store, databaseUrl) => ({
  ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  ...(store === 'redis' ? { REDIS_URL } : {}),
});

/** Sends the probe preloaded into `child` a command and waits (at most 10 s) for its answer. */
function probeOf(child, probeDir) {
  return async (command) => {
    const answerFile = join(probeDir, 'answer');
    rmSync(answerFile, { force: true });
    writeFileSync(join(probeDir, 'command'), command);
    child.kill('SIGUSR2');
    for (let i = 0; i < 400 && !existsSync(answerFile); i++) await sleep(25);
    await sleep(25);
    const answer = readFileSync(answerFile, 'utf8');
    if (answer.startsWith('error') || answer.startsWith('unknown')) throw new Error(`probe: ${answer}`);
    return answer;
  };
}

async function startService(upstreamBase, workDir, storeVariables, label) {
  const logFile = join(workDir, `service-${label}.log`);
  const probeDir = mkdtempSync(join(workDir, `probe-${label}-`));
  const out = openSync(logFile, 'w');
  const env = serviceEnv({
    PORT: '0',
    HOST: '127.0.0.1',
    LLM_PROVIDER: 'openai',
    OPENAI_BASE_URL: `${upstreamBase}/v1`,
    OPENAI_API_KEY: 'bench',
    LLM_MODEL: 'bench-model',
    LLM_MAX_RETRIES: '0',
    // All of the load comes from one address: any limit per client would measure 429s.
    RATE_LIMIT: '0',
    LOG_FORMAT: 'json',
    LOG_LEVEL: 'info',
    BENCH_PROBE_DIR: probeDir,
    ...storeVariables,
  });
  const nodeArgs = [...NODE_FLAGS, '--expose-gc', '--import', join(ROOT, 'scripts/bench/service-probe.mjs')];
  // In a folder of its own, so no .env of the checkout changes what is measured.
  const child = spawnOn(SERVICE_CORE, process.execPath, [...nodeArgs, MAIN_JS], {
    cwd: workDir,
    env,
    stdio: ['ignore', out, out],
  });
  children.add(child);
  let exited = false;
  child.once('exit', () => (exited = true));
  const startedAt = Date.now();
  let base;
  while (!base) {
    if (exited || Date.now() - startedAt > 30_000) {
      throw new Error(`the service (${label}) did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    await sleep(50);
    base = /listening on (http:\/\/[^\s"]+)/.exec(readFileSync(logFile, 'utf8'))?.[1];
  }
  const probe = probeOf(child, probeDir);
  return {
    base,
    child,
    logFile,
    probe,
    /** CPU time the service has used so far (user + system), in ms: robust to a busy machine. */
    cpuMs: () => cpuMsOf(child.pid),
    untilIdle: () => untilIdle(child.pid),
    /**
     * V8 heap and Buffers in use after a full GC, once the service is at rest: right after a load
     * its log stream can still hold megabytes of lines not yet written, and background digest folds run.
     */
    async memoryUsed() {
      await untilIdle(child.pid);
      return Number(await probe('heap'));
    },
    stop: () => stopChild(child),
  };
}

/** Waits (at most a minute) until the process uses under 2% of a core over a quarter second. */
async function untilIdle(pid) {
  for (let i = 0; i < 240; i++) {
    const before = cpuMsOf(pid);
    await sleep(250);
    if (cpuMsOf(pid) - before < 5) return;
  }
  process.stderr.write('  warning: the service did not come to rest within a minute; measuring anyway\n');
}

function cpuMsOf(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

// ---------------------------------------------------------------- HTTP clients

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Number(process.hrtime.bigint()) / 1e6;

function clientFor(base, connections = 64) {
  return new Pool(base, { connections, keepAliveTimeout: 60_000 });
}

/** `body` is sent as JSON; a string is taken as JSON already (serialized ahead, outside a timing). */
async function call(pool, method, path, body, headers = {}) {
  const response = await pool.request({
    method,
    path,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined || typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, json: text ? JSON.parse(text) : null, text };
}

async function expectStatus(promise, status, what) {
  const response = await promise;
  if (response.status !== status) throw new Error(`${what}: HTTP ${response.status} ${response.text.slice(0, 300)}`);
  return response.json;
}

const setUpstream = (upstream, settings) => call(upstream, 'POST', '/_bench', { ...DEFAULT_UPSTREAM, ...settings });

async function createChats(pool, count) {
  const ids = [];
  for (let i = 0; i < count; i += 64) {
    const batch = Array.from({ length: Math.min(64, count - i) }, () =>
      expectStatus(call(pool, 'POST', '/chats', {}), 201, 'POST /chats'),
    );
    ids.push(...(await Promise.all(batch)).map((chat) => chat.id));
  }
  return ids;
}

const messagesPath = (chatId) => `/chats/${chatId}/messages`;
/** The bare proxy's turns (the floor), through `undici` or the `openai` client, on chats that need not exist. */
const proxyPaths = (count, through = 'undici') =>
  Array.from({ length: count }, () => `/proxy/${through}${messagesPath(crypto.randomUUID())}`);

const sendTurn = (pool, path, content = MESSAGE) =>
  expectStatus(call(pool, 'POST', path, { content }), 201, `POST ${path}`);

function percentile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summarize(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), count: sorted.length };
}

/** Every client on a chat (path) of its own, as many turns as the service gives in `seconds`. */
async function throughput(base, paths, seconds, body = { content: MESSAGE }, amount) {
  let next = 0;
  const result = await autocannon({
    url: base,
    connections: paths.length,
    timeout: 60,
    ...(amount ? { amount } : { duration: seconds }),
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    setupClient(client) {
      client.setRequests([
        {
          method: 'POST',
          path: paths[next++ % paths.length],
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        },
      ]);
    },
  });
  const failed = result.non2xx + result.errors + result.timeouts;
  if (failed > 0)
    throw new Error(`load run: ${failed} of ${result.requests.total} requests failed (${result.non2xx} non-2xx)`);
  return {
    turnsPerSecond: Math.round(result.requests.total / (result.duration || seconds)),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    seconds: result.duration || seconds,
  };
}

/** A closed loop on each path (chat) for `seconds`; latencies in ms. */
async function latencies(pool, paths, seconds) {
  const samples = [];
  const until = now() + seconds * 1000;
  await Promise.all(
    paths.map(async (path) => {
      while (now() < until) {
        const started = now();
        const { status, text } = await call(pool, 'POST', path, { content: MESSAGE });
        if (status !== 201) throw new Error(`latency run: HTTP ${status} ${text.slice(0, 200)}`);
        samples.push(now() - started);
      }
    }),
  );
  return summarize(samples);
}

// ---------------------------------------------------------------- workloads

async function w1(base, paths, cpuMs) {
  if (!SMOKE) await throughput(base, paths, 3); // warm-up: JIT, connections, pools, the chats' first turns
  const cpuBefore = cpuMs();
  const result = await throughput(base, paths, SIZE.w1Seconds);
  return { ...result, cpuMsPerTurn: (cpuMs() - cpuBefore) / result.requests };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * W1 of several targets (the floors, each storage) in rounds, each target in turn for a share of
 * the time, so that this machine's drift over a run falls on all of them alike: measured a few
 * minutes apart, the same code's CPU per turn moved by a third. `targets` are
 * `{ key, base, paths, cpuMs }`; each result's latencies are the medians of its rounds'.
 */
async function w1InRounds(targets) {
  const rounds = SMOKE ? 1 : W1_ROUNDS;
  if (!SMOKE) for (const { base, paths } of targets) await throughput(base, paths, 3); // warm-up
  const sums = targets.map(() => ({ requests: 0, seconds: 0, cpuMs: 0, p50: [], p99: [] }));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < targets.length; i++) {
      const at = (round + i) % targets.length;
      const { base, paths, cpuMs } = targets[at];
      const cpuBefore = cpuMs();
      const result = await throughput(base, paths, SIZE.w1Seconds / rounds);
      const sum = sums[at];
      sum.cpuMs += cpuMs() - cpuBefore;
      sum.requests += result.requests;
      sum.seconds += result.seconds;
      sum.p50.push(result.p50Ms);
      sum.p99.push(result.p99Ms);
    }
  }
  return Object.fromEntries(
    targets.map(({ key }, at) => {
      const sum = sums[at];
      return [
        key,
        {
          turnsPerSecond: Math.round(sum.requests / sum.seconds),
          p50Ms: median(sum.p50),
          p99Ms: median(sum.p99),
          requests: sum.requests,
          cpuMsPerTurn: sum.cpuMs / sum.requests,
          rounds,
        },
      ];
    }),
  );
}

/** With BENCH_CPU_PROF, a profile of a W1 window of its own, after the measured rounds. */
async function profileW1(service, label, paths) {
  const profiler = profilerOf(service, label, 'W1');
  if (!profiler) return undefined;
  await profiler.start();
  const { requests } = await throughput(service.base, paths, SMOKE ? 0.5 : 4);
  return profiler.stop(requests);
}

/** `delay(ms)` sets how long a turn's upstream (or the bare server standing in for it) takes. */
async function w2(pool, paths, delay) {
  await delay(W2_UPSTREAM_MS);
  try {
    if (!SMOKE) await latencies(pool, paths, 2); // warm-up, as W1 has: the chats' first turns, the JIT
    return await latencies(pool, paths, SIZE.w2Seconds);
  } finally {
    await delay(0);
  }
}

const upstreamDelay = (upstream) => (ms) => setUpstream(upstream, { latencyMs: ms });

/** `paths(pool)` gives the chats' paths, one turn each. */
async function w3(base, upstream, paths, profiler) {
  const pool = clientFor(base, SIZE.w3Chats + 16);
  try {
    const chats = await paths(pool);
    await setUpstream(upstream, { latencyMs: W3_UPSTREAM_MS });
    await profiler?.start();
    const started = now();
    await Promise.all(chats.map((path) => sendTurn(pool, path)));
    const wallSeconds = (now() - started) / 1000;
    const profile = await profiler?.stop(chats.length);
    return { wallSeconds, chats: chats.length, ...(profile && { profile }) };
  } finally {
    await setUpstream(upstream, { latencyMs: 0 });
    await pool.close();
  }
}

/** Turns sent to one chat, 16 at a time (they queue in the service), until it holds `messages`. */
async function fillChat(pool, chatId, messages) {
  let turns = Math.floor(messages / 2);
  const worker = async () => {
    while (turns-- > 0) await sendTurn(pool, messagesPath(chatId));
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

/**
 * Cost against history length: the median turn in chats of each size but the first, all of them
 * long enough to fill the context window, and in a short chat (the first size) beside them, the
 * cost of a full window. Every chat is filled first and the service left to come to rest; then
 * the timed turns go in rounds, one on each size in a rotating order. This machine's speed drifts
 * by tens of percent over seconds, and timing each size in a block of its own put that drift
 * into the ratio.
 */
async function w4(pool, service) {
  const sizes = SIZE.w4Sizes;
  const chats = {};
  for (const size of sizes) {
    // A short chat grows noticeably with every timed turn, so it gets one chat per timed turn.
    chats[size] = await createChats(pool, size < 100 ? SIZE.w4Turns : 1);
  }
  await Promise.all(sizes.flatMap((size) => chats[size].map((chatId) => fillChat(pool, chatId, size))));
  await service.untilIdle();
  const samples = Object.fromEntries(sizes.map((size) => [size, []]));
  for (let round = 0; round < SIZE.w4Turns; round++) {
    for (let i = 0; i < sizes.length; i++) {
      const size = sizes[(round + i) % sizes.length];
      const started = now();
      await sendTurn(pool, messagesPath(chats[size][round % chats[size].length]));
      samples[size].push(now() - started);
    }
  }
  const medians = Object.fromEntries(sizes.map((size) => [size, summarize(samples[size]).p50]));
  const shortest = sizes[1];
  const longest = sizes[sizes.length - 1];
  return { medianMs: medians, ratio: medians[longest] / medians[shortest] };
}

/**
 * Branches cost nothing per turn: a chat of `w4Branches` branches (each five turns after an edit
 * of a random earlier message) beside a line of as many messages, both filling the window. In
 * rounds, a turn that follows the current branch on each, and an edit from a random reply on
 * each (a new branch, whose context is read afresh).
 */
async function w4b(pool, service) {
  const [line, branched] = await createChats(pool, 2);
  const turnsPerBranch = 5;
  await fillChat(pool, line, SIZE.w4Branches * turnsPerBranch * 2);
  const replies = { [line]: [], [branched]: [] };
  const turn = async (chatId, parentId) => {
    const body = parentId === undefined ? { content: MESSAGE } : { content: MESSAGE, parentId };
    const { assistantMessage } = await expectStatus(call(pool, 'POST', messagesPath(chatId), body), 201, 'W4b turn');
    replies[chatId].push(assistantMessage.id);
  };
  const randomReply = (chatId) => replies[chatId][Math.floor(Math.random() * replies[chatId].length)];
  for (let branch = 0; branch < SIZE.w4Branches; branch++) {
    await turn(branched, branch === 0 ? undefined : randomReply(branched));
    for (let i = 1; i < turnsPerBranch; i++) await turn(branched);
  }
  const lineReplies = await expectStatus(
    call(pool, 'GET', `${messagesPath(line)}?branch=all&limit=1000`),
    200,
    'W4b list',
  );
  replies[line] = lineReplies.data.filter((m) => m.role === 'assistant').map((m) => m.id);
  await service.untilIdle();
  const kinds = [
    ['lineTurn', () => turn(line)],
    ['branchedTurn', () => turn(branched)],
    ['lineEdit', () => turn(line, randomReply(line))],
    ['branchedEdit', () => turn(branched, randomReply(branched))],
  ];
  const samples = Object.fromEntries(kinds.map(([kind]) => [kind, []]));
  for (let round = 0; round < SIZE.w4Turns; round++) {
    for (let i = 0; i < kinds.length; i++) {
      const [kind, run] = kinds[(round + i) % kinds.length];
      const started = now();
      await run();
      samples[kind].push(now() - started);
    }
  }
  const medianMs = Object.fromEntries(kinds.map(([kind]) => [kind, summarize(samples[kind]).p50]));
  return {
    medianMs,
    turnRatio: medianMs.branchedTurn / medianMs.lineTurn,
    editRatio: medianMs.branchedEdit / medianMs.lineEdit,
  };
}

async function w5(base, pool, upstream, service) {
  await setUpstream(upstream, { replyChars: 200, pieces: 40 });
  try {
    const chats = await createChats(pool, W1_CLIENTS);
    const before = await service.memoryUsed();
    const run = await throughput(base, chats.map(messagesPath), 0, { content: MESSAGE_200 }, SIZE.w5Messages / 2);
    const after = await service.memoryUsed();
    const messages = run.requests * 2;
    return {
      bytesPerMessage: Math.round((after - before) / messages),
      messages,
      memoryBefore: before,
      memoryAfter: after,
    };
  } finally {
    await setUpstream(upstream, {});
  }
}

/** Streamed turns one at a time: when the first `delta` arrives, less the upstream's first token. */
async function w6(pool, upstream, path) {
  await setUpstream(upstream, { latencyMs: W6_UPSTREAM_MS, interTokenMs: 2, ttftTags: true });
  const firstDelta = [];
  try {
    for (let i = 0; i < SIZE.w6Turns; i++) {
      const started = now();
      const response = await pool.request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ content: `${MESSAGE} [ttft:${i}]` }),
      });
      if (response.statusCode !== 200) throw new Error(`stream: HTTP ${response.statusCode}`);
      let text = '';
      let seen;
      for await (const chunk of response.body) {
        text += chunk;
        if (seen === undefined && text.includes('event: delta')) seen = now() - started;
      }
      if (seen === undefined || !text.includes('event: assistant_message')) {
        throw new Error(`stream ended without a delta and the reply: ${text.slice(-600)}`);
      }
      firstDelta.push(seen);
    }
    const upstreamFirstToken = (await call(upstream, 'GET', '/_bench/ttft')).json;
    if (Object.keys(upstreamFirstToken).length !== firstDelta.length)
      throw new Error('stream: the upstream missed a turn');
    const added = summarize(firstDelta.map((ms, i) => ms - upstreamFirstToken[i]));
    return { p50Ms: added.p50, p99Ms: added.p99 };
  } finally {
    await setUpstream(upstream, {});
  }
}

/**
 * Resuming a stream: a streamed turn whose tokens come 5 ms apart is dropped after its first delta,
 * and resumed with `GET …/stream` and that event's id; the time from the resume request to its
 * first event.
 */
async function w6resume(pool, upstream, path) {
  await setUpstream(upstream, { interTokenMs: 5 });
  const firstEvent = [];
  try {
    for (let i = 0; i < SIZE.w6Turns; i++) {
      const response = await pool.request({
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ content: MESSAGE }),
      });
      if (response.statusCode !== 200) throw new Error(`stream: HTTP ${response.statusCode}`);
      let text = '';
      let lastId;
      for await (const chunk of response.body) {
        text += chunk;
        lastId = /id: (\S+)\nevent: delta/.exec(text)?.[1];
        if (lastId) break; // the client drops the stream
      }
      if (!lastId) throw new Error(`stream ended without a delta: ${text.slice(-600)}`);
      const started = now();
      const resumed = await pool.request({
        method: 'GET',
        path: path.replace(/\/messages$/, '/stream'),
        headers: { accept: 'text/event-stream', 'last-event-id': lastId },
      });
      if (resumed.statusCode !== 200) throw new Error(`resume: HTTP ${resumed.statusCode}`);
      let rest = '';
      let first;
      for await (const chunk of resumed.body) {
        rest += chunk;
        if (first === undefined && rest.includes('event: ')) first = now() - started;
      }
      if (!rest.includes('event: assistant_message')) throw new Error(`resume ended without the reply: ${rest}`);
      firstEvent.push(first);
    }
    const { p50, p99 } = summarize(firstEvent);
    return { p50Ms: p50, p99Ms: p99 };
  } finally {
    await setUpstream(upstream, {});
  }
}

/**
 * Import against turns: a chat of `w7Messages` messages (user and assistant pairs, one branch)
 * stored by turns with an instant upstream (the fake upstream at its default latency, 0), then the
 * same messages, its export document, stored by `POST /chats/import` in batched statements. One
 * import warms up; the median of the timed ones counts.
 */
async function w7(pool) {
  const [chatId] = await createChats(pool, 1);
  const turnsStarted = now();
  await fillChat(pool, chatId, SIZE.w7Messages);
  const turnsMs = now() - turnsStarted;
  const document = await expectStatus(call(pool, 'GET', `/chats/${chatId}/export`), 200, 'W7 export');
  if (document.messages.length !== SIZE.w7Messages) throw new Error(`W7: ${document.messages.length} messages stored`);
  const body = JSON.stringify(document);
  const importMs = [];
  for (let i = 0; i <= W7_IMPORTS; i++) {
    const started = now();
    const chat = await expectStatus(call(pool, 'POST', '/chats/import', body), 201, 'W7 import');
    if (i > 0) importMs.push(now() - started);
    if (chat.messageCount !== SIZE.w7Messages) throw new Error(`W7: ${chat.messageCount} messages imported`);
  }
  const medianImportMs = median(importMs);
  return { messages: SIZE.w7Messages, turnsMs, importMs: medianImportMs, ratio: turnsMs / medianImportMs };
}

const W8_KEYS = { small: 'bench-small-tenant-key-0000', large: 'bench-large-tenant-key-0000' };
const W8_API_KEYS = Object.entries(W8_KEYS)
  .map(([tenant, key]) => `${tenant}:${key}`)
  .join(',');
/** Everyday words the W8 messages are made of; PROBE is rare, in the same few messages of each tenant. */
const W8_WORDS = (
  'order parcel delivery refund invoice account payment carrier address customer support question answer ' +
  'price discount shipping return warehouse package tracking number email phone weekend morning evening ' +
  'travel hotel flight train ticket booking museum river bridge market coffee bread garden window street'
).split(' ');
const W8_PROBE = 'zephyr';

/**
 * Search with an index, not a scan: the p50 of a query in a tenant of `w8Small` messages and in
 * one of `w8Large`, each holding the probe word in the same ten messages, queried in turn (every
 * chat imported first). Memory builds a tenant's index at its first search, before the rounds.
 */
async function w8(pool) {
  const importChat = async (tenant, count, withProbe) => {
    const messages = Array.from({ length: count }, (_, i) => {
      const words = Array.from({ length: 12 }, (_, w) => W8_WORDS[(i * 7 + w * 13) % W8_WORDS.length]);
      if (i < withProbe) words.splice(5, 0, W8_PROBE);
      return { role: i % 2 ? 'assistant' : 'user', content: words.join(' ') };
    });
    const auth = { authorization: `Bearer ${W8_KEYS[tenant]}` };
    await expectStatus(call(pool, 'POST', '/chats/import', { messages }, auth), 201, `W8 import (${tenant})`);
  };
  const perChat = Math.min(SIZE.w8Large, 10_000);
  await importChat('small', SIZE.w8Small, 10);
  await importChat('large', perChat, 10);
  for (let stored = perChat; stored < SIZE.w8Large; stored += perChat) await importChat('large', perChat, 0);
  const search = async (tenant) => {
    const auth = { authorization: `Bearer ${W8_KEYS[tenant]}` };
    const started = now();
    const page = await expectStatus(call(pool, 'GET', `/search?q=${W8_PROBE}&limit=20`, undefined, auth), 200, 'W8');
    const ms = now() - started;
    if (page.data.length === 0) throw new Error(`W8: the ${tenant} tenant found nothing`);
    return ms;
  };
  await search('small');
  await search('large');
  const samples = { small: [], large: [] };
  for (let round = 0; round < SIZE.w8Rounds; round++) {
    for (const tenant of round % 2 ? ['small', 'large'] : ['large', 'small'])
      samples[tenant].push(await search(tenant));
  }
  const small = summarize(samples.small).p50;
  const large = summarize(samples.large).p50;
  return {
    smallMessages: SIZE.w8Small,
    largeMessages: SIZE.w8Large,
    smallP50Ms: small,
    largeP50Ms: large,
    ratio: large / small,
  };
}

// ---------------------------------------------------------------- the run

function machine() {
  const cpu = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpu)?.[1] ?? 'unknown CPU';
  return {
    cpu: model,
    cores: CORES,
    node: process.version,
    nodeFlags: NODE_FLAGS,
    pinned: PINNED,
    loadAverage: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

/**
 * W2, W3 and W6 (those of `workloads`) on the framework floor: what Express, Nest and the client
 * take of each target's margin before any of the service's own work.
 */
async function frameworkFloors(upstream, workDir, workloads) {
  const framework = await startHelper('framework-server.mjs', [`${upstream.base}/v1`], {
    probeDir: mkdtempSync(join(workDir, 'probe-framework-')),
  });
  const pool = clientFor(framework.base, 16);
  const paths = (count) => Array.from({ length: count }, () => messagesPath(crypto.randomUUID()));
  try {
    return {
      ...(workloads.includes('W2') && {
        W2framework: await w2(pool, paths(W2_CLIENTS), upstreamDelay(upstream.pool)),
      }),
      ...(workloads.includes('W6') && { W6framework: await w6(pool, upstream.pool, paths(1)[0]) }),
      ...(workloads.includes('W3') && {
        W3framework: await w3(framework.base, upstream.pool, async () => paths(SIZE.w3Chats)),
      }),
    };
  } finally {
    await pool.close();
    await framework.stop();
  }
}

/**
 * W1 of every storage in `stores`, and of the bare proxy's two floors when `floors` is given, all
 * in one set of rounds with the services started side by side (each idle while another is loaded).
 */
async function w1Phase(upstream, workDir, stores, { floors }) {
  const started = [];
  const schemas = [];
  const results = {};
  moveLocalServers();
  try {
    const targets = [];
    if (floors) {
      targets.push({ key: 'floor', base: floors.base, paths: proxyPaths(W1_CLIENTS), cpuMs: floors.cpuMs });
      targets.push({
        key: 'floorOpenai',
        base: floors.base,
        paths: proxyPaths(W1_CLIENTS, 'openai'),
        cpuMs: floors.cpuMs,
      });
      const framework = await startHelper('framework-server.mjs', [`${upstream.base}/v1`], {
        probeDir: mkdtempSync(join(workDir, 'probe-framework-')),
      });
      started.push({ service: framework });
      targets.push({
        key: 'floorFramework',
        label: 'framework',
        base: framework.base,
        paths: Array.from({ length: W1_CLIENTS }, () => messagesPath(crypto.randomUUID())),
        cpuMs: () => cpuMsOf(framework.child.pid),
        service: framework,
      });
    }
    for (const store of stores) {
      let url;
      if (store === 'sqlite') url = `sqlite:${join(workDir, 'bench-w1.db')}`;
      if (store === 'postgres') {
        try {
          const schema = await createPostgresSchema(POSTGRES_URL, 'konko_bench');
          schemas.push(schema);
          url = schema.url;
        } catch (error) {
          results.postgres = { skipped: `PostgreSQL at ${POSTGRES_URL} is not reachable (${error.message})` };
          continue;
        }
      }
      const service = await startService(upstream.base, workDir, storeEnv(store, url), `${store}-w1`);
      const pool = clientFor(service.base, 8);
      started.push({ store, service, pool });
      const paths = (await createChats(pool, W1_CLIENTS)).map(messagesPath);
      targets.push({ key: store, base: service.base, paths, cpuMs: service.cpuMs, service });
    }
    Object.assign(results, await w1InRounds(targets));
    for (const { key, label, service, paths } of targets) {
      if (!service) continue;
      const profile = await profileW1(service, label ?? key, paths);
      if (profile) results[key].profile = profile;
    }
  } finally {
    for (const { service, pool } of started) {
      await pool?.close();
      await service.stop();
    }
    for (const schema of schemas) await schema.drop();
    restoreLocalServers();
  }
  return results;
}

/** With BENCH_CPU_PROF, a CPU profile of the service's timed run of a workload and where its time went. */
function profilerOf(service, label, workload) {
  if (!process.env.BENCH_CPU_PROF) return undefined;
  const dir = resolve(process.env.BENCH_CPU_PROF);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${label}-${workload}.cpuprofile`);
  const allocationsFile = join(dir, `${label}-${workload}.heapprofile`);
  return {
    start: () => service.probe('profile-start'),
    async stop(turns) {
      await service.probe(`profile-stop ${file} ${allocationsFile}`);
      const { busyMs, parts } = summarizeProfile(JSON.parse(readFileSync(file, 'utf8')));
      process.stderr.write(
        `  profile: ${file} (${turns} turns, ${fmt(busyMs / turns, 3)} ms of CPU per turn sampled)\n`,
      );
      for (const { part, ms, share } of parts) {
        process.stderr.write(
          `    ${fmt(share * 100, 1).padStart(5)}%  ${fmt((ms / turns) * 1000, 0).padStart(5)} µs  ${part}\n`,
        );
      }
      const allocated = summarizeAllocations(JSON.parse(readFileSync(allocationsFile, 'utf8')));
      const kb = (bytes) => fmt(bytes / turns / 1024, 1);
      process.stderr.write(`  allocated: ${allocationsFile} (${kb(allocated.bytes)} KB per turn sampled)\n`);
      for (const { part, bytes } of allocated.parts) {
        process.stderr.write(`    ${kb(bytes).padStart(6)} KB  ${part}\n`);
      }
      return { file, turns, parts, allocationsFile, allocatedParts: allocated.parts };
    },
  };
}

async function measureService(label, upstream, workDir, databaseUrl, workloads, extraEnv = {}) {
  const service = await startService(upstream.base, workDir, { ...storeEnv(label, databaseUrl), ...extraEnv }, label);
  const pool = clientFor(service.base, 80);
  const results = {};
  try {
    for (const name of workloads) {
      process.stderr.write(`  ${label}: ${name} …\n`);
      const upstreamPool = upstream.pool;
      const chatPaths = async (count, on = pool) => (await createChats(on, count)).map(messagesPath);
      if (name === 'W2') results.W2 = await w2(pool, await chatPaths(W2_CLIENTS), upstreamDelay(upstreamPool));
      if (name === 'W6') results.W6 = await w6(pool, upstreamPool, (await chatPaths(1))[0]);
      if (name === 'W6r') results.W6r = await w6resume(pool, upstreamPool, (await chatPaths(1))[0]);
      if (name === 'W3') {
        const paths = (on) => chatPaths(SIZE.w3Chats, on);
        results.W3 = await w3(service.base, upstreamPool, paths, profilerOf(service, label, 'W3'));
      }
      if (name === 'W4') results.W4 = await w4(pool, service);
      if (name === 'W4b') results.W4b = await w4b(pool, service);
      if (name === 'W5') results.W5 = await w5(service.base, pool, upstreamPool, service);
      if (name === 'W7') results.W7 = await w7(pool);
      if (name === 'W8') results.W8 = await w8(pool);
    }
  } catch (error) {
    error.message += `\n(service log: ${service.logFile})`;
    throw error;
  } finally {
    await pool.close();
    await service.stop();
  }
  return results;
}

async function withPostgresSchema(run) {
  let schema;
  try {
    schema = await createPostgresSchema(POSTGRES_URL, 'konko_bench');
  } catch (error) {
    return { skipped: `PostgreSQL at ${POSTGRES_URL} is not reachable (${error.message})` };
  }
  try {
    return await run(schema.url);
  } finally {
    await schema.drop();
  }
}

/**
 * `--only=memory:W1,sqlite` runs some of the measurements (for profiling); the bare server's are
 * always taken, as the ceiling and baseline.
 */
const ONLY = args
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',')
  .map((entry) => entry.split(':'));
const PLAN = [
  ['memory', ['W1', 'W2', 'W6', 'W6r', 'W3', 'W4', 'W4b', 'W5', 'W7', 'W8']],
  ['redis', ['W1', 'W2', 'W6', 'W6r']],
  ['sqlite', ['W1', 'W4', 'W4b', 'W7', 'W8']],
  ['postgres', ['W1', 'W4', 'W4b', 'W7', 'W8']],
]
  .map(([store, workloads]) => [
    store,
    workloads.filter((w) => !ONLY || ONLY.some(([s, only]) => s === store && (only === undefined || only === w))),
  ])
  .filter(([, workloads]) => workloads.length > 0);

async function main() {
  if (!existsSync(MAIN_JS)) throw new Error('dist/main.js is missing: run `npm run build` first');
  // The benchmark's own process drives the load from the other core than the service's.
  if (PINNED) execFileSync('taskset', ['-cp', LOAD_CORE, String(process.pid)], { stdio: 'ignore' });
  const workDir = mkdtempSync(join(tmpdir(), 'konko-bench-'));
  const results = { machine: machine(), smoke: SMOKE, startedAt: new Date().toISOString() };
  const upstream = await startHelper('fake-upstream.mjs');
  upstream.pool = clientFor(upstream.base, 4);
  const bare = await startHelper('bare-server.mjs', [`${upstream.base}/v1`], { measured: true });
  // The ceiling runs where the service would.
  if (PINNED) execFileSync('taskset', ['-cp', SERVICE_CORE, String(bare.child.pid)], { stdio: 'ignore' });
  let failed = false;
  try {
    process.stderr.write('bare node:http server …\n');
    const barePool = clientFor(bare.base, 80);
    const bareCpuMs = () => cpuMsOf(bare.child.pid);
    const barePaths = Array.from({ length: W1_CLIENTS }, () => messagesPath(crypto.randomUUID()));
    results.bare = {
      W1: await w1(bare.base, barePaths, bareCpuMs),
      W2: await w2(barePool, barePaths.slice(0, W2_CLIENTS), (ms) =>
        call(barePool, 'POST', '/_bench', { delayMs: ms }),
      ),
    };
    // The floor is taken for the workloads measured in memory, which it is shown beside.
    const inMemory = PLAN.find(([store]) => store === 'memory')?.[1] ?? [];
    results.floor = {};
    const w1Stores = PLAN.filter(([, workloads]) => workloads.includes('W1')).map(([store]) => store);
    if (w1Stores.length > 0) {
      process.stderr.write(
        `W1 in rounds: ${[...(inMemory.includes('W1') ? ['floors'] : []), ...w1Stores].join(', ')} …\n`,
      );
      const w1Results = await w1Phase(upstream, workDir, w1Stores, {
        floors: inMemory.includes('W1') ? { base: bare.base, cpuMs: bareCpuMs } : undefined,
      });
      results.localServersMovedInW1 = serversMovedInW1 > 0;
      for (const [key, value] of Object.entries(w1Results)) {
        const floorKey = { floor: 'W1', floorOpenai: 'W1openai', floorFramework: 'W1framework' }[key];
        if (floorKey) results.floor[floorKey] = value;
        else results[key] = { ...results[key], W1: value };
      }
    }
    process.stderr.write('bare proxy …\n');
    if (inMemory.includes('W2')) {
      const delay = upstreamDelay(upstream.pool);
      results.floor.W2 = await w2(barePool, proxyPaths(W2_CLIENTS), delay);
      results.floor.W2openai = await w2(barePool, proxyPaths(W2_CLIENTS, 'openai'), delay);
    }
    if (inMemory.includes('W6')) results.floor.W6 = await w6(barePool, upstream.pool, proxyPaths(1)[0]);
    if (inMemory.includes('W3'))
      results.floor.W3 = await w3(bare.base, upstream.pool, async () => proxyPaths(SIZE.w3Chats));
    await barePool.close();
    if (['W2', 'W3', 'W6'].some((w) => inMemory.includes(w))) {
      process.stderr.write('framework floor …\n');
      Object.assign(results.floor, await frameworkFloors(upstream, workDir, inMemory));
    }
    for (const [store, all] of PLAN) {
      // W8 needs two tenants, so API keys: a service of its own, on a database of its own.
      const runs = [
        [all.filter((w) => w !== 'W1' && w !== 'W8'), {}, 'bench.db'],
        [all.filter((w) => w === 'W8'), { API_KEYS: W8_API_KEYS }, 'bench-w8.db'],
      ];
      for (const [workloads, env, sqliteFile] of runs) {
        if (workloads.length === 0) continue;
        process.stderr.write(`${store} …\n`);
        const measure = (url) => measureService(store, upstream, workDir, url, workloads, env);
        let measured;
        if (store === 'memory' || store === 'redis') measured = await measure(undefined);
        if (store === 'sqlite') measured = await measure(`sqlite:${join(workDir, sqliteFile)}`);
        if (store === 'postgres') measured = await withPostgresSchema(measure);
        results[store] = measured.skipped ? measured : { ...results[store], ...measured };
      }
    }
  } catch (error) {
    failed = true;
    process.stderr.write(`bench failed: ${error.stack ?? error}\n`);
  } finally {
    await upstream.pool.close();
    await upstream.stop();
    await bare.stop();
    for (const child of children) await stopChild(child);
    if (!failed) rmSync(workDir, { recursive: true, force: true });
  }
  if (failed) process.exit(1);
  results.finishedAt = new Date().toISOString();
  writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${table(results)}\nJSON: ${OUT}\n`);
}

// ---------------------------------------------------------------- the table

const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '—');
const signed = (n, digits) => (n < 0 ? `−${fmt(-n, digits)}` : `+${fmt(n, digits)}`);
/** ✓ or ✗ for a measured figure; blank when it was not measured. */
const mark = (value, ok) => (value === undefined ? '' : ok(value) ? '✓' : '✗');

function table(r) {
  const bare = r.bare;
  const floor = r.floor ?? {};
  const m = r.memory ?? {};
  const sqlite = r.sqlite?.skipped ? {} : (r.sqlite ?? {});
  const postgres = r.postgres?.skipped ? {} : (r.postgres ?? {});
  const ratio = (x, of) => (x !== undefined && of !== undefined ? x / of : undefined);
  const w1 = (x, extra = '') =>
    x
      ? `${x.turnsPerSecond} turns/s, p50 ${fmt(x.p50Ms, 0)} ms, p99 ${fmt(x.p99Ms, 0)} ms, CPU ${fmt(x.cpuMsPerTurn, 3)} ms/turn${extra}`
      : (r.postgres?.skipped ?? '—');
  const cpuRatio = ratio(m.W1?.cpuMsPerTurn, floor.W1?.cpuMsPerTurn);
  const frameworkRatio = ratio(m.W1?.cpuMsPerTurn, floor.W1framework?.cpuMsPerTurn);
  const ofBareProxy = (x) => {
    const of = ratio(x?.cpuMsPerTurn, floor.W1?.cpuMsPerTurn);
    return of === undefined ? '' : ` (${fmt(of, 2)}× the bare proxy's)`;
  };
  const ofMemory = (x) => ratio(x?.turnsPerSecond, m.W1?.turnsPerSecond);
  const share = (x) => (ofMemory(x) === undefined ? '' : ` (${Math.round(100 * ofMemory(x))}% of memory's turns/s)`);
  const w2Over = (x, base) => x && base && { p50: x.p50 - base.p50, p99: x.p99 - base.p99 };
  const w2 = (x, over, baseName) =>
    x
      ? `p50 ${fmt(x.p50, 2)} ms, p99 ${fmt(x.p99, 2)} ms` +
        (over ? `; over ${baseName}: p50 ${signed(over.p50, 2)}, p99 ${signed(over.p99, 2)} ms` : '')
      : '—';
  const mw2 = w2Over(m.W2, floor.W2openai);
  const sizes = SIZE.w4Sizes.map((n) => n.toLocaleString('en'));
  const w4 = (x) =>
    x
      ? `${Object.values(x.medianMs)
          .map((ms) => fmt(ms, 2))
          .join(' / ')} ms; ratio ${sizes[sizes.length - 1]} to ${sizes[1]}: ${fmt(x.ratio, 2)}`
      : '—';
  const w3Ratio = ratio(m.W3?.wallSeconds, floor.W3?.wallSeconds);
  const w3FrameworkRatio = ratio(floor.W3framework?.wallSeconds, floor.W3?.wallSeconds);
  const w6Over = m.W6 && floor.W6 ? m.W6.p50Ms - floor.W6.p50Ms : undefined;
  const w6FrameworkOver = floor.W6framework && floor.W6 ? floor.W6framework.p50Ms - floor.W6.p50Ms : undefined;
  const w6 = (x, extra = '') => (x ? `p50 ${fmt(x.p50Ms, 2)} ms, p99 ${fmt(x.p99Ms, 2)} ms${extra}` : '—');
  const withRedis = r.redis ?? {};
  const redisCpu = ratio(withRedis.W1?.cpuMsPerTurn, m.W1?.cpuMsPerTurn);
  const redisW6Over = withRedis.W6 && floor.W6 ? withRedis.W6.p50Ms - floor.W6.p50Ms : undefined;
  const rows = [
    [
      'W1 memory: 64 clients, 0 ms upstream',
      w1(
        m.W1,
        cpuRatio === undefined
          ? ''
          : ` (${fmt(cpuRatio, 2)}× the bare proxy's` +
              (frameworkRatio === undefined ? ')' : `, ${fmt(frameworkRatio, 2)}× the framework's)`),
      ),
      "CPU/turn ≤ 4× the bare proxy's",
      mark(cpuRatio, (v) => v <= 4),
    ],
    [
      'W1 SQLite',
      w1(sqlite.W1, share(sqlite.W1)),
      "≥ 50% of memory's turns/s",
      mark(ofMemory(sqlite.W1), (v) => v >= 0.5),
    ],
    [
      'W1 PostgreSQL',
      w1(postgres.W1, share(postgres.W1)),
      "≥ 50% of memory's turns/s",
      mark(ofMemory(postgres.W1), (v) => v >= 0.5),
    ],
    ['W1 ceiling: bare node:http', w1(bare.W1), '', ''],
    ['W1 floor: bare proxy, one upstream call', w1(floor.W1), '', ''],
    ['W1 floor: the same through the openai client', w1(floor.W1openai, ofBareProxy(floor.W1openai)), '', ''],
    [
      'W1 floor: Express, Nest and the provider, nothing else',
      w1(floor.W1framework, ofBareProxy(floor.W1framework)),
      '',
      '',
    ],
    [
      `W2 memory: 16 clients, ${W2_UPSTREAM_MS} ms upstream`,
      w2(m.W2, mw2, 'the openai-client floor'),
      'p50 +≤ 1 ms, p99 +≤ 5 ms over that floor',
      mark(mw2, (v) => v.p50 <= 1 && v.p99 <= 5),
    ],
    [`W2 baseline: bare node:http, ${W2_UPSTREAM_MS} ms delay`, w2(bare.W2), '', ''],
    [`W2 floor: bare proxy, ${W2_UPSTREAM_MS} ms upstream`, w2(floor.W2, w2Over(floor.W2, bare.W2), 'bare'), '', ''],
    [
      'W2 floor: the same through the openai client',
      w2(floor.W2openai, w2Over(floor.W2openai, bare.W2), 'bare'),
      '',
      '',
    ],
    [
      'W2 floor: Express, Nest and the provider, nothing else',
      w2(floor.W2framework, w2Over(floor.W2framework, floor.W2openai), 'the openai-client floor'),
      '',
      '',
    ],
    [
      `W3 memory: ${SIZE.w3Chats} chats at once, ${W3_UPSTREAM_MS} ms upstream`,
      m.W3
        ? `${fmt(m.W3.wallSeconds, 3)} s${w3Ratio === undefined ? '' : ` (${fmt(w3Ratio, 2)}× the bare proxy's)`}`
        : '—',
      "≤ 1.3× the bare proxy's",
      mark(w3Ratio, (v) => v <= 1.3),
    ],
    ['W3 floor: bare proxy', floor.W3 ? `${fmt(floor.W3.wallSeconds, 3)} s` : '—', '', ''],
    [
      'W3 floor: Express, Nest and the provider, nothing else',
      floor.W3framework
        ? `${fmt(floor.W3framework.wallSeconds, 3)} s` +
          (w3FrameworkRatio === undefined ? '' : ` (${fmt(w3FrameworkRatio, 2)}× the bare proxy's)`)
        : '—',
      '',
      '',
    ],
    [
      `W4 memory: median turn at ${sizes.join(' / ')} messages`,
      w4(m.W4),
      'ratio ≤ 1.1',
      mark(m.W4?.ratio, (v) => v <= 1.1),
    ],
    ['W4 SQLite', w4(sqlite.W4), 'ratio ≤ 1.2', mark(sqlite.W4?.ratio, (v) => v <= 1.2)],
    ['W4 PostgreSQL', w4(postgres.W4), 'ratio ≤ 1.2', mark(postgres.W4?.ratio, (v) => v <= 1.2)],
    ...[
      ['memory', m],
      ['SQLite', sqlite],
      ['PostgreSQL', postgres],
    ].map(([name, store]) => [
      `W4b ${name}: ${SIZE.w4Branches} branches vs a line, turn / edit (ms)`,
      store.W4b
        ? `${fmt(store.W4b.medianMs.branchedTurn, 2)} vs ${fmt(store.W4b.medianMs.lineTurn, 2)} (${fmt(store.W4b.turnRatio, 2)}) / ` +
          `${fmt(store.W4b.medianMs.branchedEdit, 2)} vs ${fmt(store.W4b.medianMs.lineEdit, 2)} (${fmt(store.W4b.editRatio, 2)})`
        : '—',
      "a branched chat's turn costs a line's",
      '',
    ]),
    ...[
      ['memory', m],
      ['SQLite', sqlite],
      ['PostgreSQL', postgres],
    ].map(([name, store]) => [
      `W8 ${name}: search p50 in a tenant of ${SIZE.w8Large.toLocaleString('en')} messages vs ${SIZE.w8Small.toLocaleString('en')}`,
      store.W8
        ? `${fmt(store.W8.largeP50Ms, 2)} vs ${fmt(store.W8.smallP50Ms, 2)} ms: ${fmt(store.W8.ratio, 2)}×`
        : '—',
      '≤ 2×',
      mark(store.W8?.ratio, (v) => v <= 2),
    ]),
    [
      `W5 memory: bytes per 200-char message, ${SIZE.w5Messages.toLocaleString('en')} stored`,
      m.W5 ? `${m.W5.bytesPerMessage} B` : '—',
      '≤ 600 B',
      mark(m.W5?.bytesPerMessage, (v) => v <= 600),
    ],
    [
      'W6 memory: first delta − upstream first token',
      w6(m.W6, w6Over === undefined ? '' : ` (p50 ${signed(w6Over, 2)} ms over the bare proxy's)`),
      "p50 ≤ the bare proxy's + 1 ms",
      mark(w6Over, (v) => v <= 1),
    ],
    ['W6 floor: bare proxy', w6(floor.W6), '', ''],
    [
      'W6 floor: Express, Nest and the provider, nothing else',
      w6(
        floor.W6framework,
        w6FrameworkOver === undefined ? '' : ` (p50 ${signed(w6FrameworkOver, 2)} ms over the bare proxy's)`,
      ),
      '',
      '',
    ],
    ...[
      ['memory', m],
      ['SQLite', sqlite],
      ['PostgreSQL', postgres],
    ].map(([name, store]) => [
      `W7 ${name}: a ${SIZE.w7Messages.toLocaleString('en')}-message chat imported vs stored by turns`,
      store.W7
        ? `import ${fmt(store.W7.importMs, 0)} ms, turns ${fmt(store.W7.turnsMs, 0)} ms: ${fmt(store.W7.ratio, 1)}× faster`
        : '—',
      '≥ 20× faster',
      mark(store.W7?.ratio, (v) => v >= 20),
    ]),
    ['W6 memory: resumed stream, its first event after the resume request', w6(m.W6r), '', ''],
    [
      'W1 memory with REDIS_URL',
      w1(withRedis.W1, redisCpu === undefined ? '' : ` (${fmt(redisCpu, 2)}× memory's CPU per turn)`),
      "as memory's, within noise",
      '',
    ],
    [
      'W2 memory with REDIS_URL',
      w2(withRedis.W2, w2Over(withRedis.W2, floor.W2openai), 'the openai-client floor'),
      "as memory's, within noise",
      '',
    ],
    [
      'W6 memory with REDIS_URL',
      w6(withRedis.W6, redisW6Over === undefined ? '' : ` (p50 ${signed(redisW6Over, 2)} ms over the bare proxy's)`),
      "as memory's, within noise",
      '',
    ],
    ['W6 memory with REDIS_URL: resumed stream', w6(withRedis.W6r), '', ''],
  ];
  const head = ['workload', 'result', 'target', 'met'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  const mc = r.machine;
  return [
    `Konko Chat API benchmark${r.smoke ? ' (smoke: sizes too small to mean anything)' : ''}`,
    `${mc.cpu}, ${mc.cores} cores, Node ${mc.node}; service on core ${SERVICE_CORE}, load and upstream` +
      `${r.localServersMovedInW1 ? ' (in W1 also local PostgreSQL and Redis)' : ''} on core ${LOAD_CORE}` +
      `${mc.pinned ? '' : ' (not pinned: no taskset)'}; load average at start ${mc.loadAverage}`,
    'The service runs at its shipped defaults but RATE_LIMIT=0: all of the load comes from one address.' +
      (mc.nodeFlags?.length
        ? ` It and the floors run with \`npm start\`'s Node flags: ${mc.nodeFlags.join(' ')}.`
        : ''),
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
  ].join('\n');
}

// Interrupted (Ctrl-C, a CI timeout): stop what it started rather than leave it running.
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of children) child.kill('SIGKILL');
    restoreLocalServers();
    process.exit(130);
  });
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error.stack ?? error}\n`);
  for (const child of children) child.kill('SIGKILL');
  restoreLocalServers();
  process.exit(1);
});
