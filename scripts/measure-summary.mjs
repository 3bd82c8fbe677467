// Times GET /chats/{id}/summary of a 5,000-message chat against the built service (npm run build
// first), with the offline provider, on each storage named in the arguments (default: memory sqlite):
//   memory    the first summary (right after the last turn: what background folding has not
//             reached yet is analysed then), a cached one,
//             and one after one more turn;
//   sqlite    a temp file: the same in the process that stored the chat, then after restarts (a new
//   postgres  process over the same database), where the first summary starts from the stored digest.
//             PostgreSQL: its own schema of BENCH_POSTGRES_URL, dropped after.
// MESSAGES (default 5000) and RESTARTS (default 3) change the sizes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBuiltService } from './support/built-service.mjs';
import { createPostgresSchema } from './support/postgres-schema.mjs';

const MESSAGES = Number(process.env.MESSAGES ?? 5000);
const RESTARTS = Number(process.env.RESTARTS ?? 3);
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const storages = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['memory', 'sqlite'];

const SENTENCES = [
  'How do I configure the PostgreSQL connection pool for our service?',
  'The delivery was late again and I am really unhappy with the support.',
  'We loved the trip to Lisbon, the tram rides and the custard tarts were wonderful.',
  'Can you explain how the refund process works for cancelled orders?',
];

/** In memory unless `databaseUrl`; open and without rate limits (2,500 turns a minute would be over them). */
const startService = (databaseUrl) =>
  startBuiltService({ RATE_LIMIT: '0', ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}) });

async function call(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
  return response.json();
}

async function seedChat(base) {
  const { id } = await call(base, 'POST', '/chats', { title: 'Summary benchmark' });
  for (let i = 0; i < MESSAGES / 2; i++) {
    await call(base, 'POST', `/chats/${id}/messages`, { content: `${SENTENCES[i % 4]} (#${i})` });
  }
  return id;
}

async function timeSummary(base, chatId, storage, label) {
  const started = process.hrtime.bigint();
  const summary = await call(base, 'GET', `/chats/${chatId}/summary`);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(
    `${storage.padEnd(9)} ${label.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms  (${summary.messageCount} messages)`,
  );
  return ms;
}

/** A cached summary, then one after one more turn. */
async function timeWarmSummaries(base, chatId, storage) {
  await timeSummary(base, chatId, storage, 'unchanged chat: cached');
  await call(base, 'POST', `/chats/${chatId}/messages`, { content: 'One more question about the connection pool.' });
  await timeSummary(base, chatId, storage, 'after one more turn');
}

async function measureMemory() {
  const service = await startService('');
  try {
    const chatId = await seedChat(service.base);
    await timeSummary(service.base, chatId, 'memory', 'first summary, right after the last turn');
    await timeWarmSummaries(service.base, chatId, 'memory');
  } finally {
    await service.stop();
  }
}

async function measureDatabase(storage, databaseUrl) {
  const seeding = await startService(databaseUrl);
  let chatId;
  try {
    chatId = await seedChat(seeding.base);
    await timeSummary(seeding.base, chatId, storage, 'first summary, right after the last turn');
  } finally {
    await seeding.stop();
  }
  const colds = [];
  for (let restart = 1; restart <= RESTARTS; restart++) {
    const service = await startService(databaseUrl);
    try {
      colds.push(await timeSummary(service.base, chatId, storage, `restart ${restart}: first summary`));
      if (restart === RESTARTS) await timeWarmSummaries(service.base, chatId, storage);
    } finally {
      await service.stop();
    }
  }
  const median = [...colds].sort((a, b) => a - b)[Math.floor(colds.length / 2)];
  console.log(`${storage.padEnd(9)} ${'cold after a restart: median'.padEnd(44)} ${median.toFixed(1).padStart(8)} ms`);
}

async function withSqliteFile(measure) {
  const folder = mkdtempSync(join(tmpdir(), 'konko-summary-'));
  try {
    await measure(`sqlite:${join(folder, 'konko.db')}`);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

async function withPostgresSchema(measure) {
  const schema = await createPostgresSchema(POSTGRES_URL, 'konko_summary_bench');
  try {
    await measure(schema.url);
  } finally {
    await schema.drop();
  }
}

console.log(`GET /chats/{id}/summary of a ${MESSAGES}-message chat, offline provider`);
for (const storage of storages) {
  if (storage === 'memory') await measureMemory();
  else if (storage === 'sqlite') await withSqliteFile((url) => measureDatabase('sqlite', url));
  else if (storage === 'postgres') await withPostgresSchema((url) => measureDatabase('postgres', url));
  else throw new Error(`unknown storage "${storage}": use memory, sqlite or postgres`);
}
