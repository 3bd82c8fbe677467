// A PostgreSQL schema of its own for a measurement or the soak, created on the server at `url`
// and dropped after, so nothing of the run stays behind.
import pg from 'pg';

/** Runs one statement on the server at `url`, on a connection of its own. */
async function runAdmin(url, statement) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * Creates the schema `<prefix>_<pid>` and resolves with a DATABASE_URL whose connections use only
 * it, and `drop()`; rejects when the server cannot be reached.
 */
export async function createPostgresSchema(url, prefix) {
  const schema = `${prefix}_${process.pid}_${Date.now()}`;
  await runAdmin(url, `create schema ${schema}`);
  const inSchema = new URL(url);
  inSchema.searchParams.set('options', `-c search_path=${schema}`);
  return { url: inSchema.toString(), drop: () => runAdmin(url, `drop schema if exists ${schema} cascade`) };
}
