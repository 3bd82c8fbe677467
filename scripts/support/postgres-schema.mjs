// A PostgreSQL schema of its own for a measurement or the soak, created on the server at `url`
// and dropped after, so nothing of the run stays behind.
import postgres from 'postgres';

/** Runs one statement on the server at `url`, on a connection of its own. */
async function runAdmin(url, statement) {
  const sql = postgres(url, { max: 1, onnotice: () => undefined, connect_timeout: 5 });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end();
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
