import { Logger } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { InvalidConfigError } from './config/env';
import { describeStorage, parseStorageConfig } from './config/storage.config';
import { openSqlDatabase } from './storage/open-sql-database';

/** `npm run migrate`: brings the database DATABASE_URL names up to date, then exits. */
async function migrate(): Promise<void> {
  // Loads `.env` the way the service does.
  ConfigModule.forRoot();
  await ConfigModule.envVariablesLoaded;
  const logger = new Logger('Migrate');
  const { database: storage } = parseStorageConfig(process.env);
  if (storage.kind === 'memory') {
    logger.log('DATABASE_URL is unset: in-memory storage has no schema to migrate');
    return;
  }
  const { database, applied } = await openSqlDatabase(storage);
  await database.close();
  logger.log(
    `${describeStorage(storage)}: ${applied.length > 0 ? `applied ${applied.join(', ')}` : 'already up to date'}`,
  );
}

migrate().catch((error: unknown) => {
  process.stderr.write(`${error instanceof InvalidConfigError ? error.message : String(error)}\n`);
  process.exit(1);
});
