import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChatRepository } from '../../src/chats/chat.repository';
import { openSqlDatabase, SqlStorageSettings } from '../../src/storage/open-sql-database';
import { SqlChatRepository } from '../../src/storage/sql/sql-chat.repository';
import type { SqlDatabase } from '../../src/storage/sql/sql-database';
import { createTestSchema } from './test-postgres';

/** A database of its own for one test or suite: a SQLite file in a temp dir, or a PostgreSQL schema. */
export interface TestDatabase {
  /** What DATABASE_URL says to use it. */
  url: string;
  settings: SqlStorageSettings;
  drop(): Promise<void>;
}

export async function createSqliteTestDatabase(): Promise<TestDatabase> {
  const dir = mkdtempSync(join(tmpdir(), 'konko-sqlite-'));
  const path = join(dir, 'konko.db');
  return {
    url: `sqlite:${path}`,
    settings: { kind: 'sqlite', path },
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function createPostgresTestDatabase(): Promise<TestDatabase> {
  const schema = await createTestSchema();
  return { url: schema.url, settings: { kind: 'postgres', url: schema.url }, drop: schema.drop };
}

export interface OpenedRepository {
  repository: ChatRepository;
  /** The open database behind it, for tests that look at or tamper with its rows. */
  database: SqlDatabase;
  close(): Promise<void>;
}

/** A repository on the database, opened (and migrated) as the storage module does it. */
export async function openTestRepository(database: TestDatabase, leaseMs = 30_000): Promise<OpenedRepository> {
  const { database: opened } = await openSqlDatabase(database.settings);
  const repository = new SqlChatRepository(opened, leaseMs);
  return { repository, database: opened, close: () => repository.onModuleDestroy() };
}

/**
 * The databases that database tests run on: SQLite and PostgreSQL, always. PostgreSQL is required:
 * when it is unreachable, each of its runs fails at its first connection, saying so.
 */
export function testDatabases(): [name: string, create: () => Promise<TestDatabase>][] {
  return [
    ['sqlite', createSqliteTestDatabase],
    ['postgres', createPostgresTestDatabase],
  ];
}
