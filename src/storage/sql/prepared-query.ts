import { CompiledQuery, Kysely, QueryResult } from 'kysely';

/** A query builder, or a `sql` template (which needs the database to compile it). */
interface Buildable<R> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: only the compiler is used
  compile(db: Kysely<any>): CompiledQuery<R>;
}

/** Marks a stand-in for an argument among a compiled query's parameters. */
const STAND_IN = '\u0000arg:';

/** Runs a prepared query with this run's arguments. */
export type PreparedQuery<A, R> = (args: A) => Promise<QueryResult<R>>;

/**
 * A query Kysely builds and compiles once, then runs with each call's arguments: building and
 * compiling one of a turn's statements cost about as much CPU as SQLite took to run it. `build`
 * gets stand-ins for the arguments and must place each one as a value (`where('id', '=', id)`,
 * `eb.val(id)`), never inside SQL text or through a function that changes it; this is checked here,
 * once. `build` reads the stand-ins by name (no `...rest`: the stand-ins object has no keys). Every
 * other parameter keeps the value it was built with.
 */
export function prepareQuery<A extends object, R>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: only the driver is used
  db: Kysely<any>,
  build: (args: A) => Buildable<R>,
): PreparedQuery<A, R> {
  const used = new Set<string>();
  const standIns = new Proxy({} as A, {
    get: (_, name) => {
      used.add(String(name));
      return `${STAND_IN}${String(name)}`;
    },
  });
  const { sql, parameters } = build(standIns).compile(db);
  const slots = parameters.map((value) =>
    typeof value === 'string' && value.startsWith(STAND_IN) ? value.slice(STAND_IN.length) : undefined,
  );
  const placed = new Set(slots.filter((name) => name !== undefined));
  if (sql.includes(STAND_IN) || [...used].some((name) => !placed.has(name))) {
    throw new Error(`A prepared query used an argument other than as a value: ${sql}`);
  }
  return (args) =>
    db.executeQuery<R>(
      CompiledQuery.raw(
        sql,
        slots.map((name, i) => (name === undefined ? parameters[i] : (args as Record<string, unknown>)[name])),
      ),
    );
}
