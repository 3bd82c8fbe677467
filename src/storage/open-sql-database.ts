import type { StorageSettings } from '../config/storage.config';
import { openPostgresDatabase } from './postgres/open-postgres-database';
import { migrateToLatest } from './sql/migrate-to-latest';
import type { SqlDatabase } from './sql/sql-database';
import { openSqliteDatabase } from './sqlite/open-sqlite-database';

export type SqlStorageSettings = Exclude<StorageSettings, { kind: 'memory' }>;

/**
 * Opens the database DATABASE_URL names and brings its schema up to date; `applied` names the
 * migrations applied now (none when it already was).
 */
export async function openSqlDatabase(
  storage: SqlStorageSettings,
): Promise<{ database: SqlDatabase; applied: string[] }> {
  const database =
    storage.kind === 'sqlite' ? openSqliteDatabase(storage.path) : await openPostgresDatabase(storage.url);
  try {
    return { database, applied: await migrateToLatest(database.db, database.dialect.name) };
  } catch (error) {
    await database.close();
    throw error;
  }
}
