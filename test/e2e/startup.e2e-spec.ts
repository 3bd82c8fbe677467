import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { MIGRATE_JS, runServiceToExit, runToExit, ServiceProcess, startService } from '../support/service-process';

describe('Service start-up (e2e, built service)', () => {
  let service: ServiceProcess | undefined;
  afterEach(async () => {
    await service?.stop();
    service = undefined;
  });

  it('should serve with no configuration, in memory and offline, and say so in one line', async () => {
    service = await startService();
    expect(service.startupLine).toMatch(/storage: in-memory/);
    expect(service.startupLine).toMatch(/LLM provider: offline/);
    expect(service.startupLine).toMatch(/access: open \(no API_KEYS/);
    expect(service.startupLine).toMatch(new RegExp(`docs: ${service.baseUrl}/docs`));

    expect((await fetch(`${service.baseUrl}/docs-json`)).status).toBe(200);
    const chat = (await (await fetch(`${service.baseUrl}/chats`, { method: 'POST' })).json()) as { id: string };
    const turn = await fetch(`${service.baseUrl}/chats/${chat.id}/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ content: 'Is anyone there?' }),
    });
    expect(turn.status).toBe(201);
    const { assistantMessage } = (await turn.json()) as { assistantMessage: { content: string } };
    expect(assistantMessage.content).toMatch(/No language model is configured/);
    expect(assistantMessage.content).toContain('Is anyone there?');
    expect(assistantMessage.content).toContain('OPENAI_API_KEY');
  });

  it.each([
    ['a non-number port', { PORT: 'abc' }, 'PORT'],
    ['an unknown provider', { LLM_PROVIDER: 'skynet' }, 'LLM_PROVIDER'],
    ['an unparsable base URL', { OPENAI_BASE_URL: 'not a url' }, 'OPENAI_BASE_URL'],
    [
      'a base URL of another scheme',
      { OPENAI_BASE_URL: 'ftp://llm:s3cret@127.0.0.1/v1' },
      'OPENAI_BASE_URL="ftp://llm:***@',
    ],
    ['an unsupported database URL', { DATABASE_URL: 'mysql://nope' }, 'DATABASE_URL'],
    ['a password holding a slash', { DATABASE_URL: 'postgres://app:s3cret/x@127.0.0.1:1/test' }, 'DATABASE_URL'],
    ['a negative timeout', { LLM_TIMEOUT_MS: '-5' }, 'LLM_TIMEOUT_MS'],
    // Else every request with a body, `{}` too, would be a 413.
    ['a body limit of nothing', { BODY_LIMIT: '0' }, 'BODY_LIMIT="0" is invalid: BODY_LIMIT must be a size above 0'],
    ['an API key without its tenant', { API_KEYS: 'just-a-key-of-enough-length' }, 'API_KEYS'],
    ['a missing API key file', { API_KEYS_FILE: '/nonexistent/konko-keys' }, 'API_KEYS_FILE'],
    // ioredis would select database NaN, and the process crash on Redis's refusal.
    ['a Redis URL naming its database', { REDIS_URL: 'redis://127.0.0.1:6379/abc' }, 'REDIS_URL'],
  ])('should refuse to start on %s with one line naming the variable', async (_case, env, variable) => {
    const { code, stdout, stderr } = await runServiceToExit(env);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(variable);
    expect(stderr).not.toContain('s3cret');
  });

  it("should name an LLM server's base URL in its start-up line without its password", async () => {
    service = await startService({ OPENAI_BASE_URL: 'http://llm:s3cret@127.0.0.1:9/v1' });
    expect(service.startupLine).toContain('LLM provider: openai at http://llm:***@127.0.0.1:9/v1');
    expect(service.output()).not.toContain('s3cret');
  });

  describe('with settings it cannot start with', () => {
    let dir: string;
    let busy: Server;
    /** Takes connections and never says a word, as a PostgreSQL that hangs (or a wrong port) would. */
    let silent: Server;
    const held = new Set<Socket>();
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'konko-startup-'));
      writeFileSync(join(dir, 'a-file'), '');
      busy = createServer().listen(0, '127.0.0.1');
      await once(busy, 'listening');
      silent = createServer((socket) => {
        held.add(socket.on('error', () => undefined));
      }).listen(0, '127.0.0.1');
      await once(silent, 'listening');
    });
    afterAll(async () => {
      for (const socket of held) socket.destroy();
      for (const server of [busy, silent]) {
        server.close();
        await once(server, 'close');
      }
      rmSync(dir, { recursive: true, force: true });
    });

    // Each case: the settings, and what the line must say. Functions: the servers and `dir` come later.
    const cases: [string, () => [Record<string, string>, string]][] = [
      [
        'an unreachable PostgreSQL',
        () => [
          { DATABASE_URL: 'postgres://konko:s3cret@127.0.0.1:1/test' },
          'DATABASE_URL="postgres://konko:***@127.0.0.1:1/test" cannot be opened: connect ECONNREFUSED',
        ],
      ],
      [
        // Without a connection timeout, pg waited for the server's first word for ever.
        'a PostgreSQL that does not answer',
        () => {
          const { port } = silent.address() as AddressInfo;
          return [
            { DATABASE_URL: `postgres://konko:s3cret@127.0.0.1:${port}/test` },
            `DATABASE_URL="postgres://konko:***@127.0.0.1:${port}/test" cannot be opened: timeout expired`,
          ];
        },
      ],
      [
        // ioredis logged Redis's refusal of its SELECT, and went on in database 0.
        'a Redis database Redis does not have',
        () => [
          { REDIS_URL: 'redis://127.0.0.1:6379/99' },
          'REDIS_URL="redis://127.0.0.1:6379/99" names database 99, which Redis does not have: ERR DB index is out of range',
        ],
      ],
      [
        'a SQLite file whose folder cannot be made',
        () => [
          { DATABASE_URL: `sqlite:${join(dir, 'a-file', 'chats.db')}` },
          `DATABASE_URL="sqlite:${join(dir, 'a-file', 'chats.db')}" cannot be opened: EEXIST`,
        ],
      ],
      [
        // A table of the first migration there already: the migration fails. It printed its stack.
        'a database a migration fails on',
        () => {
          const file = join(dir, 'not-ours.db');
          new BetterSqlite3(file).exec('create table chats (id integer)').close();
          return [
            { DATABASE_URL: `sqlite:${file}` },
            `DATABASE_URL="sqlite:${file}" cannot be migrated: migration 0001_chats_and_messages failed: table "chats" already exists`,
          ];
        },
      ],
      [
        'a SQLite file that cannot be opened',
        () => [{ DATABASE_URL: `sqlite:${dir}` }, `DATABASE_URL="sqlite:${dir}" cannot be opened: unable to open`],
      ],
      [
        'a HOST that does not resolve',
        () => [{ HOST: 'konko-no-such-host.invalid' }, 'HOST="konko-no-such-host.invalid" does not resolve'],
      ],
      // 192.0.2.0/24 is reserved for documentation: no machine has it.
      [
        'a HOST not of this machine',
        () => [{ HOST: '192.0.2.1' }, 'HOST="192.0.2.1" is not an address of this machine'],
      ],
      [
        'a PORT in use',
        () => {
          const { port } = busy.address() as AddressInfo;
          return [{ HOST: '127.0.0.1', PORT: String(port) }, `PORT="${port}" is in use on 127.0.0.1`];
        },
      ],
    ];

    it.each(cases)('should refuse to start with %s in one line naming it', async (_case, settings) => {
      const [env, says] = settings();
      const { code, stdout, stderr } = await runServiceToExit({ HOST: '127.0.0.1', PORT: '0', ...env });
      expect(code).toBe(1);
      expect(stdout).toBe('');
      // One line, no stack, no password.
      expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^Cannot start: /)]);
      expect(stderr).toContain(says);
      expect(stderr).not.toContain('s3cret');
    });
  });

  describe('npm run migrate', () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'konko-migrate-'))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const migrate = (file: string) => runToExit(MIGRATE_JS, { DATABASE_URL: `sqlite:${file}` });

    it('should apply the migrations of a fresh database and say so', async () => {
      const { code, stdout, stderr } = await migrate(join(dir, 'chats.db'));
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toMatch(/applied 0001_chats_and_messages, /);
    });

    // Each case: how the database is made, and what the line must say.
    const cases: [string, (file: string) => Promise<unknown>, string][] = [
      [
        'a migration fails',
        async (file) => new BetterSqlite3(file).exec('create table chats (id integer)').close(),
        'migration 0001_chats_and_messages failed: table "chats" already exists',
      ],
      [
        // Migrated by a later version: this one does not know what it finds.
        'a migration it does not know was applied',
        async (file) => {
          expect((await migrate(file)).code).toBe(0);
          new BetterSqlite3(file).exec(`insert into kysely_migration values ('9999_later', '2030-01-01')`).close();
        },
        'corrupted migrations: previously executed migration 9999_later is missing',
      ],
    ];

    it.each(cases)('should fail in one line naming DATABASE_URL when %s', async (_case, make, says) => {
      const file = join(dir, 'chats.db');
      await make(file);
      const { code, stdout, stderr } = await migrate(file);
      expect(code).toBe(1);
      expect(stdout).toBe('');
      expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^Cannot start: /)]);
      expect(stderr).toContain(`DATABASE_URL="sqlite:${file}" cannot be migrated: ${says}`);
    });
  });

  it('should read .env from the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'konko-env-'));
    try {
      writeFileSync(join(dir, '.env'), 'LLM_MAX_RETRIES=eleven\n');
      const { code, stderr } = await runServiceToExit({}, dir);
      expect(code).toBe(1);
      expect(stderr).toContain('LLM_MAX_RETRIES');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
