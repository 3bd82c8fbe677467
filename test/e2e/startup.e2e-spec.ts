import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runServiceToExit, ServiceProcess, startService } from '../support/service-process';

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
    ['an unsupported database URL', { DATABASE_URL: 'mysql://nope' }, 'DATABASE_URL'],
    ['a negative timeout', { LLM_TIMEOUT_MS: '-5' }, 'LLM_TIMEOUT_MS'],
    ['an API key without its tenant', { API_KEYS: 'just-a-key-of-enough-length' }, 'API_KEYS'],
    ['a missing API key file', { API_KEYS_FILE: '/nonexistent/konko-keys' }, 'API_KEYS_FILE'],
  ])('should refuse to start on %s with one line naming the variable', async (_case, env, variable) => {
    const { code, stdout, stderr } = await runServiceToExit(env);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(variable);
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
