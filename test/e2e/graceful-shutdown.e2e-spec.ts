import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { FakeOpenAiServer, PARTIAL_PIECES } from '../support/fake-openai-server';
import { ServiceProcess, startService } from '../support/service-process';

interface StoredMessage {
  seq: number;
  role: string;
  status: string;
  content: string;
}

/** SIGTERM on a real process: running turns finish within the grace, the rest stop cleanly. */
describe('Graceful shutdown (e2e, built service on SQLite)', () => {
  let upstream: FakeOpenAiServer;
  let dir: string;
  let service: ServiceProcess | undefined;
  const env = () => ({
    DATABASE_URL: `sqlite:${join(dir, 'chats.db')}`,
    OPENAI_BASE_URL: upstream.baseUrl,
    LLM_MAX_RETRIES: '0',
    LLM_TIMEOUT_MS: '30000',
    SHUTDOWN_GRACE_MS: '1500',
    LOG_FORMAT: 'json',
  });
  const post = (path: string, body: unknown) =>
    fetch(`${service!.baseUrl}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'konko-shutdown-'));
    upstream = await new FakeOpenAiServer().start();
  });
  afterEach(async () => {
    await service?.stop();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('should finish turns within the grace, stop the rest as incomplete, refuse new work, and lose nothing', async () => {
    service = await startService(env());
    const finishing = ((await (await post('/chats', {})).json()) as { id: string }).id;
    const stuck = ((await (await post('/chats', {})).json()) as { id: string }).id;

    upstream.enqueue({ kind: 'reply', content: 'Finished in time.', holdAfter: 1 }, { kind: 'stall-mid-stream' });
    const finishingTurn = post(`/chats/${finishing}/messages`, { content: 'Please finish' });
    await upstream.waitForRequests(1);
    const stuckTurn = post(`/chats/${stuck}/messages`, { content: 'This one stalls' });
    await upstream.waitForRequests(2);

    const exited = once(service.child, 'exit');
    const draining = new Promise<void>((resolve) => {
      const check = () => {
        if (!service!.output().includes('SIGTERM: draining')) return;
        service!.child.stdout!.off('data', check);
        resolve();
      };
      service!.child.stdout!.on('data', check);
    });
    service.child.kill('SIGTERM');
    await draining;
    await expect(fetch(`${service.baseUrl}/health/live`)).rejects.toThrow();
    upstream.release();

    const finished = await finishingTurn;
    expect(finished.status).toBe(201);
    const stopped = await stuckTurn;
    expect(stopped.status).toBe(503);
    const problem = (await stopped.json()) as Record<string, { seq?: number; status?: string; content?: string }>;
    expect(problem).toMatchObject({
      type: 'urn:konko:problem:shutting-down',
      userMessage: { seq: 1 },
      assistantMessage: { seq: 2, status: 'incomplete', content: PARTIAL_PIECES.join('') },
    });
    expect(stopped.headers.get('retry-after')).toBe('1');
    const [code] = await exited;
    expect(code).toBe(0);

    service = await startService(env());
    const messagesOf = async (chatId: string) =>
      ((await (await fetch(`${service!.baseUrl}/chats/${chatId}/messages`)).json()) as { data: StoredMessage[] }).data;
    expect((await messagesOf(finishing)).map((m) => [m.seq, m.role, m.status, m.content])).toEqual([
      [1, 'user', 'completed', 'Please finish'],
      [2, 'assistant', 'completed', 'Finished in time.'],
    ]);
    expect((await messagesOf(stuck)).map((m) => [m.seq, m.role, m.status])).toEqual([
      [1, 'user', 'completed'],
      [2, 'assistant', 'incomplete'],
    ]);
  }, 30_000);
});
