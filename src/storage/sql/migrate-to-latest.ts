import { Kysely, MigrationResult, Migrator } from 'kysely';
import { messageOf } from '../../common/errors/error-message';
import { currentSchema, migrationsFor } from './migrations';
import type { SqlDialectName } from './sql-dialect';

/**
 * Applies every pending migration; a database that is up to date is left as it is. Returns the
 * names of the migrations applied now. Concurrent callers on PostgreSQL wait for each other
 * (Kysely's advisory lock).
 */
export async function migrateToLatest<DB>(db: Kysely<DB>, dialect: SqlDialectName): Promise<string[]> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrationsFor(dialect) },
    // Kysely finds its bookkeeping tables by name in any schema unless told which one is ours.
    migrationTableSchema: dialect === 'postgres' ? await currentSchema(db) : undefined,
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r: MigrationResult) => r.status === 'Error')?.migrationName;
    // Refused before any ran (a migration applied that this version does not know): no name.
    const message = failed ? `migration ${failed} failed: ${messageOf(error)}` : messageOf(error);
    throw new Error(message, { cause: error });
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
