// Where a service's CPU went, by part of the stack: `node scripts/bench/profile-summary.mjs <file.cpuprofile> [turns]`.
// Each sample is charged to the nearest frame on its stack that belongs to a part we name (a
// package, a folder of src/), walking from the running function outwards, so time spent inside
// Node's own modules goes to whoever called them. Prints a Markdown table; with `turns`, the
// milliseconds per turn too. `--json` prints the same figures as JSON.
import { readFileSync } from 'node:fs';

/** The probe that stops the profile: its own work (writing the profile) is no turn's. */
const PROBE = /scripts\/bench\/service-probe\.mjs/;
/** Parts, by the first pattern the frame's URL matches; order matters. */
const PARTS = [
  ['the profiler', PROBE],
  ['openai client', /node_modules\/openai\//],
  ['undici (HTTP to the upstream)', /node_modules\/undici\//],
  ['SSE parsing', /node_modules\/eventsource-parser\//],
  ['validation', /node_modules\/class-(validator|transformer)\/|(src|dist)\/common\/validation\//],
  [
    'logging',
    /node_modules\/(pino|pino-http|nestjs-pino|sonic-boom|thread-stream|pino-std-serializers)\/|(src|dist)\/logging\//,
  ],
  ['metrics', /node_modules\/(prom-client|tdigest|bintrees)\/|(src|dist)\/metrics\//],
  ['helmet', /node_modules\/helmet\//],
  ['rate limit', /node_modules\/@nestjs\/throttler\/|(src|dist)\/rate-limit\//],
  ['auth', /(src|dist)\/auth\//],
  [
    'Nest pipeline',
    /node_modules\/@nestjs\/(core|common|platform-express)\/|node_modules\/rxjs\/|node_modules\/reflect-metadata\//,
  ],
  [
    'Express',
    /node_modules\/(express|router|body-parser|raw-body|finalhandler|send|on-finished|type-is|content-type|accepts|negotiator|qs|iconv-lite|depd|cookie|etag|fresh|mime-types|parseurl|path-to-regexp|vary|statuses|encodeurl|escape-html|forwarded|proxy-addr|media-typer)\//,
  ],
  ['tokenizer', /node_modules\/gpt-tokenizer\//],
  [
    'storage',
    /(src|dist)\/storage\/|node_modules\/(kysely|better-sqlite3|pg|pg-protocol|pg-pool|pg-types|postgres|kysely-postgres-js)\//,
  ],
  ['context and request body', /(src|dist)\/messages\/context|(src|dist)\/llm\/request-body/],
  ['LLM provider', /(src|dist)\/llm\//],
  ['turn (messages, chats, idempotency, summaries)', /(src|dist)\/(messages|chats|idempotency|summaries)\//],
  ['HTTP edge (common, SSE)', /(src|dist)\/common\//],
  ['other packages', /node_modules\//],
  ['other service code', /\/(src|dist)\//],
];
const GC = 'garbage collection';
const NODE = "Node's HTTP server and I/O (no caller of ours)";
const IDLE = 'idle';
/** Not the service's time: left out of every figure. */
const NOT_COUNTED = new Set([IDLE, 'the profiler']);

function partOf(url) {
  for (const [name, pattern] of PARTS) if (pattern.test(url)) return name;
  return undefined;
}

export function summarize(profile) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  /** Each node's part: its own, else its caller's, else Node's. */
  const memo = new Map();
  const chargeOf = (id) => {
    if (memo.has(id)) return memo.get(id);
    const node = nodes.get(id);
    const name = node.callFrame.functionName;
    let part;
    if (name === '(garbage collector)') part = GC;
    else if (name === '(idle)') part = IDLE;
    else part = partOf(node.callFrame.url) ?? (parent.has(id) ? chargeOf(parent.get(id)) : NODE);
    memo.set(id, part);
    return part;
  };
  const micros = new Map();
  profile.samples.forEach((id, i) => {
    const part = chargeOf(id);
    micros.set(part, (micros.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const busy = [...micros].filter(([part]) => !NOT_COUNTED.has(part)).reduce((sum, [, us]) => sum + us, 0);
  return {
    busyMs: busy / 1000,
    parts: [...micros]
      .filter(([part]) => !NOT_COUNTED.has(part))
      .sort((a, b) => b[1] - a[1])
      .map(([part, us]) => ({ part, ms: us / 1000, share: us / busy })),
  };
}

/** The bytes a sampled allocation profile saw allocated, by part, charged as `summarize` charges time. */
export function summarizeAllocations(profile) {
  const bytes = new Map();
  const walk = (node, callersPart) => {
    const part = partOf(node.callFrame.url) ?? callersPart;
    if (node.selfSize > 0) bytes.set(part, (bytes.get(part) ?? 0) + node.selfSize);
    for (const child of node.children) walk(child, part);
  };
  walk(profile.head, NODE);
  const counted = [...bytes].filter(([part]) => !NOT_COUNTED.has(part));
  return {
    bytes: counted.reduce((sum, [, b]) => sum + b, 0),
    parts: counted.sort((a, b) => b[1] - a[1]).map(([part, b]) => ({ part, bytes: b })),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, turnsArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const turns = Number(turnsArg) || undefined;
  const result = summarize(JSON.parse(readFileSync(file, 'utf8')));
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify({ ...result, turns }, null, 2)}\n`);
  } else {
    const perTurn = (ms) => (turns ? ` ${((ms / turns) * 1000).toFixed(0)} µs |` : '');
    process.stdout.write(`| part | share |${turns ? ' per turn |' : ''}\n| --- | --- |${turns ? ' --- |' : ''}\n`);
    for (const { part, ms, share } of result.parts) {
      process.stdout.write(`| ${part} | ${(share * 100).toFixed(1)}% |${perTurn(ms)}\n`);
    }
    process.stdout.write(`| all | 100% |${perTurn(result.busyMs)}\n`);
  }
}
