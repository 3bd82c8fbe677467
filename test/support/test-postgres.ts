import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { Client } from 'pg';

/** The machine's PostgreSQL (trust auth); TEST_POSTGRES_URL points the tests elsewhere. */
export const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Why the PostgreSQL suites cannot run here, or null when they must run. With CI=true they
 * always must: an unreachable server then fails them instead of passing them by.
 */
export function postgresUnavailableReason(): string | null {
  if (process.env.CI === 'true') return null;
  // Jest registers tests synchronously, so the probe runs in a child process it can wait for.
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const { Client } = require('pg');
       const client = new Client({ connectionString: process.argv[1], connectionTimeoutMillis: 3000 });
       client.connect().then(() => client.end(), (error) => { console.error(error.message); process.exit(1); });`,
      TEST_POSTGRES_URL,
    ],
    { cwd: resolve(__dirname, '../..'), encoding: 'utf8', timeout: 10_000 },
  );
  if (probe.status === 0) return null;
  const detail = probe.stderr.trim() || probe.error?.message || `exit ${probe.status}`;
  return `PostgreSQL at ${TEST_POSTGRES_URL} is not reachable (${detail}); set CI=true to require it`;
}

export interface TestSchema {
  /** A DATABASE_URL whose connections use only this schema. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A new, empty schema of its own for one test run, dropped with everything in it by `drop()`. */
export async function createTestSchema(): Promise<TestSchema> {
  const name = `konko_test_${randomBytes(6).toString('hex')}`;
  await runAdmin(`create schema ${name}`);
  const url = new URL(TEST_POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${name}`);
  return { url: url.toString(), name, drop: () => runAdmin(`drop schema if exists ${name} cascade`) };
}

async function runAdmin(statement: string): Promise<void> {
  const client = new Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
