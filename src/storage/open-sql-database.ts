import { StorageSettings, unusableDatabase } from '../config/storage.config';
import { openPostgresDatabase } from './postgres/open-postgres-database';
import { migrateToLatest } from './sql/migrate-to-latest';
import type { SqlDatabase } from './sql/sql-database';
import { openSqliteDatabase } from './sqlite/open-sqlite-database';

export type SqlStorageSettings = Exclude<StorageSettings, { kind: 'memory' }>;

/**
 * Opens the database DATABASE_URL names and brings its schema up to date; `applied` names the
 * migrations applied now (none when it already was). A database that cannot be opened, or on
 * which a migration fails, throws an InvalidConfigError naming DATABASE_URL.
 */
export async function openSqlDatabase(
  storage: SqlStorageSettings,
): Promise<{ database: SqlDatabase; applied: string[] }> {
  let database: SqlDatabase;
  try {
    database = storage.kind === 'sqlite' ? openSqliteDatabase(storage.path) : await openPostgresDatabase(storage.url);
  } catch (error) {
    // Unreachable, refused, a file that cannot be made: the setting's problem, not the code's.
    throw unusableDatabase(storage, error);
  }
  try {
    return { database, applied: await migrateToLatest(database.db, database.dialect.name) };
  } catch (error) {
    await database.close();
    // A table in the way, a later version's migrations, no right to create: the database's state.
    throw unusableDatabase(storage, error, 'migrated');
  }
}
