// Times one page of GET /chats/{id}/messages on a 100,000-message chat, on SQLite (a temp file)
// and PostgreSQL (its own schema of BENCH_POSTGRES_URL, dropped after; skipped if unreachable):
// the repository's keyset query at the start, middle and end of the chat, the same pages over
// HTTP from the built service, and the query plan. Run `npm run build` first.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBuiltService } from './support/built-service.mjs';
import { createPostgresSchema } from './support/postgres-schema.mjs';

const require = createRequire(import.meta.url);
const { sql } = require('kysely');
const { openSqlDatabase } = require('../dist/storage/open-sql-database.js');
const { SqlChatRepository } = require('../dist/storage/sql/sql-chat.repository.js');
const { encodeCursor } = require('../dist/common/pagination/cursor.js');

const MESSAGES = Number(process.env.MESSAGES ?? 100_000);
const PAGE = 100;
const RUNS = 50;
const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function fillChat(database, repository) {
  // The open tenant's, so the service (run without API keys) serves it over HTTP too.
  const chat = await repository.createChat({
    tenantId: 'default',
    title: 'Page benchmark',
    systemPrompt: null,
    model: 'm',
    metadata: {},
  });
  const createdAt = new Date().toISOString();
  for (let from = 1; from <= MESSAGES; from += 1000) {
    const rows = [];
    for (let seq = from; seq < from + 1000 && seq <= MESSAGES; seq++) {
      rows.push({
        id: crypto.randomUUID(),
        chat_id: chat.id,
        seq,
        role: seq % 2 ? 'user' : 'assistant',
        content: `Message ${seq}: how should we size the connection pool for a service with bursty traffic?`,
        status: 'completed',
        in_reply_to: null,
        model: null,
        usage: null,
        token_count: 20,
        created_at: createdAt,
      });
    }
    await database.db.insertInto('messages').values(rows).execute();
  }
  await database.db.updateTable('chats').set({ message_count: MESSAGES }).where('id', '=', chat.id).execute();
  return chat.id;
}

/** Median and 95th percentile of RUNS calls, in milliseconds. */
async function time(call) {
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const started = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))].toFixed(2);
  return `median ${at(0.5).padStart(6)} ms, p95 ${at(0.95).padStart(6)} ms`;
}

async function queryPlan(database, chatId) {
  const afterSeq = MESSAGES / 2;
  if (database.dialect.name === 'sqlite') {
    const { rows } =
      await sql`explain query plan select * from messages where chat_id = ${chatId} and seq > ${afterSeq} order by seq limit ${PAGE}`.execute(
        database.db,
      );
    return rows.map((r) => r.detail).join('; ');
  }
  const { rows } =
    await sql`explain select * from messages where chat_id = ${chatId} and seq > ${afterSeq} order by seq limit ${PAGE}`.execute(
      database.db,
    );
  return rows.map((r) => r['QUERY PLAN'].trim()).join('; ');
}

async function measure(label, settings, databaseUrl) {
  const { database } = await openSqlDatabase(settings);
  const repository = new SqlChatRepository(database, 30_000);
  try {
    const filling = process.hrtime.bigint();
    const chatId = await fillChat(database, repository);
    console.log(
      `${label}: ${MESSAGES} messages stored in ${(Number(process.hrtime.bigint() - filling) / 1e9).toFixed(1)} s`,
    );
    console.log(`  plan: ${await queryPlan(database, chatId)}`);
    const positions = [
      ['first page', undefined],
      ['middle page', MESSAGES / 2],
      ['last page', MESSAGES - PAGE],
    ];
    for (const [name, afterSeq] of positions) {
      console.log(
        `  repository ${name.padEnd(12)} ${await time(() => repository.listMessages({ tenantId: 'default', chatId }, { limit: PAGE + 1, afterSeq }))}`,
      );
    }
    const service = await startBuiltService({ DATABASE_URL: databaseUrl, RATE_LIMIT: '0' });
    try {
      for (const [name, afterSeq] of positions) {
        const cursor = afterSeq === undefined ? '' : `&cursor=${encodeCursor(`messages:${chatId}`, afterSeq)}`;
        const url = `${service.base}/chats/${chatId}/messages?limit=${PAGE}${cursor}`;
        const check = await (await fetch(url)).json();
        if (check.data.length !== PAGE)
          throw new Error(`expected a full page, got ${JSON.stringify(check).slice(0, 200)}`);
        console.log(`  HTTP       ${name.padEnd(12)} ${await time(() => fetch(url).then((r) => r.arrayBuffer()))}`);
      }
    } finally {
      await service.stop();
    }
  } finally {
    await repository.onModuleDestroy();
  }
}

const dir = mkdtempSync(join(tmpdir(), 'konko-bench-'));
try {
  const path = join(dir, 'konko.db');
  await measure('SQLite', { kind: 'sqlite', path }, `sqlite:${path}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

let schema;
try {
  schema = await createPostgresSchema(POSTGRES_URL, 'konko_bench');
} catch (error) {
  console.log(`PostgreSQL: not measured, ${POSTGRES_URL} is not reachable (${error.message})`);
  process.exit(0);
}
try {
  await measure('PostgreSQL', { kind: 'postgres', url: schema.url }, schema.url);
} finally {
  await schema.drop();
}
