import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import Redis from 'ioredis';
import { Client } from 'pg';
import type { MessageDto } from '../../src/messages/dto/message.dto';
import { EventStreamClient } from '../support/event-stream-client';
import { FakeOpenAiServer } from '../support/fake-openai-server';
import { PostgresLink } from '../support/postgres-link';
import { ServiceProcess, startService } from '../support/service-process';
import { TestDatabase, testDatabases } from '../support/test-databases';
import { TEST_POSTGRES_URL } from '../support/test-postgres';
import { until } from '../support/until';

// Each test starts service processes on real databases and Redis.
jest.setTimeout(60_000);

const REDIS_URL = 'redis://127.0.0.1:6379/13';
const PIECES = ['Once ', 'upon ', 'a ', 'time'];
/** SQLite always; PostgreSQL unless it is unreachable outside CI (testDatabases prints why). */
const databases = testDatabases();
const postgres = databases.find(([name]) => name === 'postgres');

/**
 * Two instances of the built service on one database (and Redis, when given), one upstream. A
 * reaches the database by `databaseUrlOfA`, when given (through a link a test can cut).
 */
function twoInstances(
  createDatabase: () => Promise<TestDatabase>,
  extraEnv: () => Record<string, string>,
  { databaseUrlOfA = (url: string) => url }: { databaseUrlOfA?: (url: string) => string } = {},
) {
  const ctx = {} as { llm: FakeOpenAiServer; database: TestDatabase; a: ServiceProcess; b: ServiceProcess };
  beforeEach(async () => {
    ctx.llm = await new FakeOpenAiServer().start();
    ctx.database = await createDatabase();
    const env = {
      DATABASE_URL: ctx.database.url,
      OPENAI_BASE_URL: ctx.llm.baseUrl,
      LLM_MAX_RETRIES: '0',
      RATE_LIMIT: '0',
      AUTO_TITLE: 'off',
      CHAT_LOCK_LEASE_MS: '2000',
      ...extraEnv(),
    };
    [ctx.a, ctx.b] = [
      await startService({ ...env, DATABASE_URL: databaseUrlOfA(env.DATABASE_URL) }),
      await startService(env),
    ];
  });
  afterEach(async () => {
    await Promise.all([ctx.a?.stop(), ctx.b?.stop()]);
    await ctx.llm.close();
    await ctx.database.drop();
  });
  return ctx;
}

const post = (service: ServiceProcess, path: string, body?: unknown) =>
  fetch(`${service.baseUrl}${path}`, {
    method: 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const newChat = async (service: ServiceProcess) =>
  ((await (await post(service, '/chats')).json()) as { id: string }).id;
const messagesOf = async (service: ServiceProcess, chatId: string) =>
  ((await (await fetch(`${service.baseUrl}/chats/${chatId}/messages?branch=all`)).json()) as { data: MessageDto[] })
    .data;

/** A streamed turn on `service` whose upstream holds after two pieces; the events its client saw by then. */
async function heldTurn(ctx: { llm: FakeOpenAiServer }, service: ServiceProcess, chatId: string) {
  ctx.llm.enqueue({ kind: 'reply', pieces: PIECES, holdAfter: 2 });
  const held = once(ctx.llm, 'held');
  const client = await EventStreamClient.post(`${service.baseUrl}/chats/${chatId}/messages`, { content: 'A story' });
  await held;
  const seen = (await client.waitForEvents(3)).slice(0, 3);
  return { client, seen };
}

describe.each(postgres ? [postgres] : [])(
  'Two instances on one %s and one Redis (e2e, service processes)',
  (_name, create) => {
    const ctx = twoInstances(create, () => ({ REDIS_URL }));
    beforeAll(async () => {
      const redis = new Redis(REDIS_URL);
      await redis.flushdb();
      await redis.quit();
    });

    it('should resume on B a turn that runs on A, stop it from B, and abort A’s upstream call', async () => {
      const chatId = await newChat(ctx.a);
      const { client, seen } = await heldTurn(ctx, ctx.a, chatId);
      client.disconnect();

      const resumed = await EventStreamClient.get(`${ctx.b.baseUrl}/chats/${chatId}/stream`, {
        'Last-Event-ID': seen[2].id!,
      });
      expect(resumed.response.status).toBe(200);
      const abandoned = once(ctx.llm, 'abandoned');
      expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(202);
      await abandoned;
      const rest = await resumed.all();

      const [, reply] = await messagesOf(ctx.b, chatId);
      expect(reply).toMatchObject({ status: 'incomplete', content: 'Once upon ' });
      expect(rest).toEqual([{ event: 'assistant_message', data: reply, id: expect.any(String) }]);
      expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(204);
    });

    it('should follow on B the events A sends after the resume, joining to the stored reply', async () => {
      const chatId = await newChat(ctx.a);
      const { client, seen } = await heldTurn(ctx, ctx.a, chatId);
      client.disconnect();
      const resumed = await EventStreamClient.get(`${ctx.b.baseUrl}/chats/${chatId}/stream`, {
        'Last-Event-ID': seen[1].id!,
      });
      await resumed.waitForEvents(1);
      ctx.llm.release();
      const rest = await resumed.all();

      const [, reply] = await messagesOf(ctx.b, chatId);
      // The client resumes after the second event it saw.
      const deltas = [...seen.slice(0, 2), ...rest].filter((e) => e.event === 'delta').map((e) => e.data.content);
      expect(deltas.join('')).toBe(reply.content);
      expect(reply).toMatchObject({ status: 'completed', content: PIECES.join('') });
      expect(rest.at(-1)).toMatchObject({ event: 'assistant_message', data: reply });
    });

    it('should answer a resume with what was stored after the instance running the turn was killed', async () => {
      const chatId = await newChat(ctx.a);
      const { seen } = await heldTurn(ctx, ctx.a, chatId);
      await ctx.a.kill();

      const resumed = await (
        await EventStreamClient.get(`${ctx.b.baseUrl}/chats/${chatId}/stream`, { 'Last-Event-ID': seen[2].id! })
      ).all();

      const stored = await messagesOf(ctx.b, chatId);
      expect(stored).toEqual([seen[0].data]);
      expect(resumed).toEqual([
        {
          event: 'error',
          id: expect.any(String),
          data: expect.objectContaining({ type: 'urn:konko:problem:turn-interrupted', userMessage: seen[0].data }),
        },
      ]);
    });
  },
);

describe.each(databases)('Two instances on one %s without Redis (e2e, service processes)', (_name, create) => {
  const ctx = twoInstances(create, () => ({}));

  it('should stop from B the turn A runs, and refuse to resume it on B with 409', async () => {
    const chatId = await newChat(ctx.a);
    const { client, seen } = await heldTurn(ctx, ctx.a, chatId);

    const elsewhere = await fetch(`${ctx.b.baseUrl}/chats/${chatId}/stream`, {
      headers: { 'Last-Event-ID': seen[2].id! },
    });
    expect(elsewhere.status).toBe(409);
    expect(await elsewhere.json()).toMatchObject({ type: 'urn:konko:problem:turn-elsewhere' });
    expect((await fetch(`${ctx.b.baseUrl}/chats/${chatId}/stream`)).status).toBe(409);

    const abandoned = once(ctx.llm, 'abandoned');
    expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(202);
    await abandoned;
    const events = await client.all();
    const [, reply] = await messagesOf(ctx.b, chatId);
    expect(reply).toMatchObject({ status: 'incomplete', content: 'Once upon ' });
    expect(events.at(-1)).toEqual({ event: 'assistant_message', data: reply, id: expect.any(String) });
    // Ended: any instance answers a resume with its final event, read from the database.
    const final = await (
      await EventStreamClient.get(`${ctx.b.baseUrl}/chats/${chatId}/stream`, { 'Last-Event-ID': seen[2].id! })
    ).all();
    expect(final.map((e) => e.data)).toEqual([reply]);
    expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(204);
  });

  it('should answer on B a resume of a turn that failed midway on A with the error A answers', async () => {
    const chatId = await newChat(ctx.a);
    ctx.llm.enqueue({ kind: 'error-mid-stream', pieces: ['Once ', 'upon '] });
    const events = await (
      await EventStreamClient.post(`${ctx.a.baseUrl}/chats/${chatId}/messages`, { content: 'A story' })
    ).all();
    expect(events.map((e) => e.event)).toEqual(['user_message', 'delta', 'delta', 'error']);
    const { instance: _sent, ...problem } = events.at(-1)!.data;
    expect(problem).toMatchObject({
      type: 'urn:konko:problem:llm-failed',
      status: 502,
      assistantMessage: { status: 'incomplete', content: 'Once upon ' },
    });

    const resumeOn = async (service: ServiceProcess) =>
      (
        await EventStreamClient.get(`${service.baseUrl}/chats/${chatId}/stream`, { 'Last-Event-ID': events[1].id! })
      ).all();
    const told = [['error', { ...problem, instance: `/chats/${chatId}/stream` }]];
    expect((await resumeOn(ctx.a)).map((e) => [e.event, e.data])).toEqual(told);
    // B tells it from storage: the same event, at the end of the turn (A still knows its place).
    const onB = await resumeOn(ctx.b);
    expect(onB.map((e) => [e.event, e.data])).toEqual(told);
    expect(onB[0].id).toBe(`${events[0].data.id}.${problem.assistantMessage.id}.end`);
  });

  it('should answer on B a resume of a turn A left when killed with turn-interrupted, while B runs the next', async () => {
    const chatId = await newChat(ctx.a);
    const { seen } = await heldTurn(ctx, ctx.a, chatId);
    await ctx.a.kill();
    // B's turn takes the chat once A's lease lapses.
    const next = await heldTurn(ctx, ctx.b, chatId);

    const resumed = await EventStreamClient.get(`${ctx.b.baseUrl}/chats/${chatId}/stream`, {
      'Last-Event-ID': seen[2].id!,
    });

    expect(resumed.response.status).toBe(200);
    expect(await resumed.all()).toEqual([
      {
        event: 'error',
        id: expect.any(String),
        data: expect.objectContaining({ type: 'urn:konko:problem:turn-interrupted', userMessage: seen[0].data }),
      },
    ]);
    // The turn B runs is B's to resume.
    const following = await EventStreamClient.get(`${ctx.b.baseUrl}/chats/${chatId}/stream`, {
      'Last-Event-ID': next.seen[2].id!,
    });
    expect(following.response.status).toBe(200);
    ctx.llm.release();
    expect((await following.all()).at(-1)).toMatchObject({ event: 'assistant_message' });
  });

  it('should end with turn-interrupted and its user message a turn of A that stalled while B took the chat', async () => {
    const chatId = await newChat(ctx.a);
    const { client, seen } = await heldTurn(ctx, ctx.a, chatId);
    // A stalls past its lease (CHAT_LOCK_LEASE_MS) and B's turn takes the chat meanwhile.
    ctx.a.child.kill('SIGSTOP');
    try {
      expect((await post(ctx.b, `/chats/${chatId}/messages`, { content: 'On B' })).status).toBe(201);
    } finally {
      ctx.a.child.kill('SIGCONT');
    }
    ctx.llm.release();
    const events = await client.all();

    // A's reply is refused: B's turn holds the chat's next places.
    const stored = await messagesOf(ctx.b, chatId);
    expect(stored.map((m) => [m.role, m.content])).toEqual([
      ['user', 'A story'],
      ['user', 'On B'],
      ['assistant', 'reply to: On B'],
    ]);
    const ended = {
      event: 'error',
      id: expect.any(String),
      data: {
        type: 'urn:konko:problem:turn-interrupted',
        title: 'The turn ended without a reply',
        status: 503,
        detail: expect.stringContaining('Your message was stored as message 1'),
        instance: `/chats/${chatId}/messages`,
        userMessage: seen[0].data,
      },
    };
    expect(events.at(-1)).toEqual(ended);
    const resumed = await (
      await EventStreamClient.get(`${ctx.a.baseUrl}/chats/${chatId}/stream`, { 'Last-Event-ID': seen[2].id! })
    ).all();
    expect(resumed).toEqual([{ ...ended, data: { ...ended.data, instance: `/chats/${chatId}/stream` } }]);
  });
});

describe.each(postgres ? [postgres] : [])(
  'Two instances on one %s without Redis, A’s notifications lost (e2e, service processes)',
  (_name, create) => {
    let link: PostgresLink;
    beforeEach(async () => {
      link = await PostgresLink.open(TEST_POSTGRES_URL);
    });
    const ctx = twoInstances(create, () => ({}), { databaseUrlOfA: (url) => link.urlFor(url) });
    afterEach(() => link.close());

    it.each([
      [
        'cut',
        async () => {
          link.cutListeners();
          await ctx.a.waitForOutput('Lost the lease notification connection');
        },
      ],
      // No FIN, no RST: the NOTIFY of the stop goes into the void, and A is not told.
      ['silent', async () => link.silenceListeners()],
    ])('should stop from B the turn A runs while A’s listening connection is %s', async (_how, loseListener) => {
      const chatId = await newChat(ctx.a);
      const { client } = await heldTurn(ctx, ctx.a, chatId);
      await loseListener();

      const abandoned = once(ctx.llm, 'abandoned');
      expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(202);
      await abandoned;
      const events = await client.all();
      const [, reply] = await messagesOf(ctx.b, chatId);
      expect(reply).toMatchObject({ status: 'incomplete', content: 'Once upon ' });
      expect(events.at(-1)).toEqual({ event: 'assistant_message', data: reply, id: expect.any(String) });
      expect(ctx.a.output()).toContain('Lost the lease notification connection');
    });
  },
);

describe.each(postgres ? [postgres] : [])(
  'Two instances on one %s without Redis, a stop as a waiting turn takes the chat (e2e, service processes)',
  (_name, create) => {
    const ctx = twoInstances(create, () => ({}));
    let observer: Client;
    beforeEach(async () => {
      observer = new Client({ connectionString: ctx.database.url });
      await observer.connect();
    });
    afterEach(() => observer.end());
    const ownerOfLease = async (chatId: string) =>
      (await observer.query<{ owner: string }>('select owner from chat_leases where chat_id = $1', [chatId])).rows[0]
        ?.owner;

    it('should stop a turn of A that waited for B’s, when the stop comes as it takes the chat', async () => {
      const chatId = await newChat(ctx.a);
      const first = await heldTurn(ctx, ctx.b, chatId);
      ctx.llm.enqueue({ kind: 'reply', pieces: PIECES, holdAfter: 2 });
      const waiting = await EventStreamClient.post(`${ctx.a.baseUrl}/chats/${chatId}/messages`, {
        content: 'Waiting on A',
      });
      const placeOfA = `select ticket from chat_lease_waiters where chat_id = $1 and owner like '%:${ctx.a.child.pid}:%'`;
      await until(async () => (await observer.query(placeOfA, [chatId])).rowCount! > 0, 'A to take a place in line');
      // A takes the chat, then waits to leave its place in line: the stop comes in between.
      const locker = new Client({ connectionString: ctx.database.url });
      await locker.connect();
      try {
        await locker.query('begin');
        await locker.query(`${placeOfA} for key share`, [chatId]);
        expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(202);
        await first.client.all();
        await until(async () => (await ownerOfLease(chatId))?.includes(`:${ctx.a.child.pid}:`), 'A to take the chat');
        await observer.query('listen konko_turn_stop_requested');
        const announced = new Promise<void>((resolve) =>
          observer.on('notification', ({ payload }) => payload === chatId && resolve()),
        );
        expect((await post(ctx.b, `/chats/${chatId}/stop`)).status).toBe(202);
        await announced;
      } finally {
        await locker.end();
      }

      const events = await waiting.all();
      const [, , , reply] = await messagesOf(ctx.b, chatId);
      // Stopped before its upstream call, or as it streams: what it had, kept.
      const deltas = events.filter((e) => e.event === 'delta').map((e) => e.data.content as string);
      expect(reply).toMatchObject({ status: 'incomplete', content: deltas.join('') });
      expect(events.at(-1)).toEqual({ event: 'assistant_message', data: reply, id: expect.any(String) });
    });
  },
);

describe.each(postgres ? [postgres] : [])(
  'Two instances on one %s without Redis, a statement of A ended by the database (e2e, service processes)',
  (_name, create) => {
    const ctx = twoInstances(create, () => ({}));
    let observer: Client;
    beforeEach(async () => {
      observer = new Client({ connectionString: ctx.database.url });
      await observer.connect();
    });
    afterEach(() => observer.end());
    const leaseOf = async (chatId: string) =>
      (
        await observer.query<{ owner: string; expires: string; live: boolean }>(
          `select owner, expires_at as expires, expires_at > (extract(epoch from clock_timestamp()) * 1000)::bigint as live
           from chat_leases where chat_id = $1`,
          [chatId],
        )
      ).rows[0];

    const nowMs = async () =>
      Number(
        (await observer.query<{ now: string }>('select (extract(epoch from clock_timestamp()) * 1000)::bigint as now'))
          .rows[0].now,
      );

    /** The backend of the statement `blocker` (a backend's pid) blocks, once it waits. */
    const blockedBy = (blocker: number) => {
      const blocked = 'select pid from pg_stat_activity where $1 = any(pg_blocking_pids(pid))';
      return until(
        async () => (await observer.query<{ pid: number }>(blocked, [blocker])).rows[0]?.pid,
        `a statement blocked by backend ${blocker}`,
      );
    };
    const pidOf = async (client: Client) =>
      (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0].pid;

    it('should answer and serve on after the connection of a running statement is ended', async () => {
      const chatId = await newChat(ctx.a);
      const locker = new Client({ connectionString: ctx.database.url });
      await locker.connect();
      let sent: Promise<Response>;
      try {
        await locker.query('begin');
        await locker.query('select id from chats where id = $1 for update', [chatId]);
        // The turn's user message counts itself on its chat, which waits for the row.
        sent = post(ctx.a, `/chats/${chatId}/messages`, { content: 'Hello' });
        await observer.query('select pg_terminate_backend($1)', [await blockedBy(await pidOf(locker))]);
      } finally {
        await locker.end();
      }

      // A turn whose write failed so stored nothing, and says so: the database may be back at once.
      const refused = await sent;
      expect(refused.status).toBe(503);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
      const problem = (await refused.json()) as { userMessage?: unknown };
      expect(problem).toMatchObject({ type: 'urn:konko:problem:turn-interrupted' });
      expect(problem.userMessage).toBeUndefined();
      // The turn let go of the chat on another connection: the next one does not wait for the lease.
      expect(await leaseOf(chatId)).toBeUndefined();
      expect((await post(ctx.a, `/chats/${chatId}/messages`, { content: 'Again' })).status).toBe(201);
    });

    it('should keep the lease renewed while A leaves the line, and release it with turn-interrupted when that fails', async () => {
      const chatId = await newChat(ctx.a);
      const first = await heldTurn(ctx, ctx.b, chatId);
      const waiting = post(ctx.a, `/chats/${chatId}/messages`, { content: 'Waiting on A' });
      const placeOfA = `select ticket from chat_lease_waiters where chat_id = $1 and owner like '%:${ctx.a.child.pid}:%'`;
      await until(async () => (await observer.query(placeOfA, [chatId])).rowCount! > 0, 'A to take a place in line');
      // A takes the chat, then waits to leave its place in line, which this transaction holds.
      const locker = new Client({ connectionString: ctx.database.url });
      await locker.connect();
      let renewed: boolean;
      try {
        await locker.query('begin');
        await locker.query(`${placeOfA} for key share`, [chatId]);
        ctx.llm.release();
        await first.client.all();
        const leaving = await blockedBy(await pidOf(locker));
        // Past the lease it held when it began to leave (CHAT_LOCK_LEASE_MS), by the database's clock.
        const taken = await leaseOf(chatId);
        expect(taken.owner).toContain(`:${ctx.a.child.pid}:`);
        // Wait out the lease once, then check that the database's clock is past it.
        await delay(Math.max(0, Number(taken.expires) - (await nowMs())) + 1);
        await until(async () => (await nowMs()) > Number(taken.expires), 'the database clock to pass the lease', {
          attempts: 20,
        });
        renewed = (await leaseOf(chatId))?.live === true;
        // The statement fails: its connection is ended under it.
        await observer.query('select pg_terminate_backend($1)', [leaving]);
      } finally {
        await locker.end();
      }

      const response = await waiting;
      const problem = (await response.json()) as Record<string, unknown>;
      expect({ renewed, status: response.status, problem, lease: await leaseOf(chatId) }).toEqual({
        renewed: true,
        status: 503,
        problem: expect.objectContaining({ type: 'urn:konko:problem:turn-interrupted' }),
        lease: undefined,
      });
      expect(problem.userMessage).toBeUndefined();
      expect((await observer.query(placeOfA, [chatId])).rowCount).toBe(0);
      expect((await post(ctx.b, `/chats/${chatId}/messages`, { content: 'Next' })).status).toBe(201);
    });
  },
);

describe.each(postgres ? [postgres] : [])(
  'Two instances on one %s, one shutting down (e2e, service processes)',
  (_name, create) => {
    const ctx = twoInstances(create, () => ({ SHUTDOWN_GRACE_MS: '1000' }));
    const turnsInFlight = async (service: ServiceProcess) =>
      Number(/^chat_turns_in_flight (\d+)$/m.exec(await (await fetch(`${service.baseUrl}/metrics`)).text())?.[1]);

    it('should stop within its grace a turn that waits for the chat A runs a turn of, and exit before that turn ends', async () => {
      const chatId = await newChat(ctx.a);
      const { client } = await heldTurn(ctx, ctx.a, chatId);
      const order: string[] = [];
      const aEnded = client.all().then((events) => {
        order.push('A’s turn ended');
        return events;
      });
      const queued = post(ctx.b, `/chats/${chatId}/messages`, { content: 'Waiting on B' });
      await until(async () => (await turnsInFlight(ctx.b)) >= 1, 'B to admit the waiting turn');

      const exited = once(ctx.b.child, 'exit').then(([code]) => {
        order.push('B exited');
        return code as number | null;
      });
      ctx.b.child.kill('SIGTERM');
      const stopped = await queued;
      expect(stopped.status).toBe(503);
      const problem = (await stopped.json()) as Record<string, unknown>;
      expect(problem).toMatchObject({ type: 'urn:konko:problem:shutting-down' });
      expect(problem.userMessage).toBeUndefined();
      expect(await exited).toBe(0);
      // A's turn still runs; only now does its upstream go on.
      ctx.llm.release();
      const events = await aEnded;

      expect(order).toEqual(['B exited', 'A’s turn ended']);
      const stored = await messagesOf(ctx.a, chatId);
      expect(stored.map((m) => m.content)).toEqual(['A story', PIECES.join('')]);
      expect(events.at(-1)).toEqual({ event: 'assistant_message', data: stored[1], id: expect.any(String) });
      expect(stored[1].status).toBe('completed');
      expect(ctx.llm.requests).toHaveLength(1);
      expect((await post(ctx.a, `/chats/${chatId}/messages`, { content: 'Next' })).status).toBe(201);
    });
  },
);
