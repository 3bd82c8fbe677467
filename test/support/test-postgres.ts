import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** The machine's PostgreSQL (trust auth); TEST_POSTGRES_URL points the tests elsewhere. */
export const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** How long the first connection of a test waits for the server before it calls it missing. */
const CONNECT_TIMEOUT_MS = 5_000;

export interface TestSchema {
  /** A DATABASE_URL whose connections use only this schema. */
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * A new, empty schema of its own for one test run, dropped with everything in it by `drop()`.
 * PostgreSQL is required: an unreachable server fails the test here, saying so.
 */
export async function createTestSchema(): Promise<TestSchema> {
  const name = `konko_test_${randomBytes(6).toString('hex')}`;
  await runAdmin(`create schema ${name}`);
  const url = new URL(TEST_POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${name}`);
  return { url: url.toString(), name, drop: () => runAdmin(`drop schema if exists ${name} cascade`) };
}

async function runAdmin(statement: string): Promise<void> {
  const client = new Client({ connectionString: TEST_POSTGRES_URL, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL at ${TEST_POSTGRES_URL} is required (see docs/testing.md), and connecting failed: ${reasonOf(error)}`,
      { cause: error },
    );
  }
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * The driver's reason. An AggregateError (every address refused) has an empty message, and the
 * driver's errors may come from another realm than the test's, so no `instanceof` here.
 */
function reasonOf(error: unknown): string {
  const { message, code, errors } = (error ?? {}) as { message?: string; code?: string; errors?: unknown };
  if (!message && Array.isArray(errors)) return errors.map(reasonOf).join('; ');
  return message || code || String(error);
}
