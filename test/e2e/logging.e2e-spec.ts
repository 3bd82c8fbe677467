import { FakeOpenAiServer } from '../support/fake-openai-server';
import { ServiceProcess, startService } from '../support/service-process';

type LogLine = Record<string, unknown>;

/** The structured lines `service` has written to its stdout. */
const logLinesOf = (service: ServiceProcess): LogLine[] =>
  service
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

/** The log is written after the response: wait for the line rather than for time. */
const waitForLogOf = (service: ServiceProcess, test: (line: LogLine) => boolean) =>
  new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!logLinesOf(service).some(test)) return;
      service.child.stdout!.off('data', check);
      clearTimeout(timer);
      resolve();
    };
    // Not a measure of speed: a bound well past any busy machine's delay, within Jest's timeout,
    // so that a missing line fails with the log that lacks it.
    const timer = setTimeout(() => {
      service.child.stdout!.off('data', check);
      reject(new Error(`no such log line in:\n${service.output()}`));
    }, 20_000);
    service.child.stdout!.on('data', check);
    check();
  });

const ofRequest = (id: string) => (line: LogLine) => (line.req as { id?: string } | undefined)?.id === id;

/** Structured logs of the built service, read from its stdout. */
describe('Request logs (e2e, built service)', () => {
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await startService({ LOG_LEVEL: 'debug', LOG_FORMAT: 'json', TRUST_PROXY: 'loopback' });
  });
  afterAll(() => service.stop());

  const waitForLog = (test: (line: LogLine) => boolean) => waitForLogOf(service, test);
  const logLines = () => logLinesOf(service);

  it('should log JSON lines that carry the request id into the LLM call, and never content or keys', async () => {
    const secretContent = 'my secret diary entry 8472';
    const secretKey = 'sk-very-secret-key-0042';
    const chat = (await (await fetch(`${service.baseUrl}/chats`, { method: 'POST' })).json()) as { id: string };
    const response = await fetch(`${service.baseUrl}/chats/${chat.id}/messages`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Request-Id': 'req-test-0001',
        Authorization: `Bearer ${secretKey}`,
        'X-Api-Key': secretKey,
        Cookie: `session=${secretKey}`,
      },
      body: JSON.stringify({ content: secretContent }),
    });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-request-id')).toBe('req-test-0001');
    await response.text();

    await waitForLog((l) => ofRequest('req-test-0001')(l) && l.msg === 'request completed');
    const lines = logLines();
    const requestLines = lines.filter((l) => (l.req as { id?: string } | undefined)?.id === 'req-test-0001');
    expect(requestLines.some((l) => l.msg === 'request completed')).toBe(true);
    expect(requestLines.some((l) => l.msg === 'LLM call ended' && l.provider === 'offline')).toBe(true);
    const everything = service.output();
    expect(everything).not.toContain(secretContent);
    expect(everything).not.toContain(secretKey);
    expect(everything).not.toContain('diary');
  });

  it("should log the client's address from X-Forwarded-For when the proxy is trusted", async () => {
    await fetch(`${service.baseUrl}/chats`, {
      headers: { 'X-Request-Id': 'req-forwarded-1', 'X-Forwarded-For': '203.0.113.9' },
    });

    const line = (l: Record<string, unknown>) => (l.req as { id?: string } | undefined)?.id === 'req-forwarded-1';
    await waitForLog(line);
    expect(logLines().find(line)).toMatchObject({ req: { remoteAddress: '203.0.113.9' } });
  });

  it("should leave a search's words, and the values of parameters it does not know, out of the logged URL", async () => {
    await fetch(`${service.baseUrl}/search?q=hunter2+diary&limit=5&%71=hunter3&note=hunter4&cursor=hunter5&hunter6`, {
      headers: { 'X-Request-Id': 'req-search-1' },
    });

    const line = (l: Record<string, unknown>) => (l.req as { id?: string } | undefined)?.id === 'req-search-1';
    await waitForLog(line);
    expect(logLines().find(line)).toMatchObject({ req: { url: '/search?q=…&limit=5&%71=…&note=…&cursor=…&…' } });
    expect(service.output()).not.toMatch(/hunter/);
  });

  it('should log a request the HTTP parser refused under the id it answered with, and none of its URL', async () => {
    const response = await fetch(`${service.baseUrl}/search?q=hunter7+${'a'.repeat(20_000)}`);
    expect(response.status).toBe(431);
    const id = response.headers.get('x-request-id');

    const line = (l: Record<string, unknown>) => (l.req as { id?: string } | undefined)?.id === id;
    await waitForLog(line);
    expect(logLines().find(line)).toMatchObject({
      msg: 'request refused by the HTTP parser',
      res: { statusCode: 431 },
      code: 'HPE_HEADER_OVERFLOW',
    });
    expect(service.output()).not.toMatch(/hunter/);
  });

  it('should write every line as a JSON object, those of start-up too', () => {
    const lines = service
      .output()
      .split('\n')
      .filter((line) => line !== '');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(() => JSON.parse(line) as unknown).not.toThrow();
    // In the order they were written: Nest's start-up, then the line that says the service listens.
    const contexts = logLines().map((line) => line.context);
    expect(contexts.lastIndexOf('RouterExplorer')).toBeGreaterThan(-1);
    expect(contexts.indexOf('Konko')).toBeGreaterThan(contexts.lastIndexOf('RouterExplorer'));
  });

  it('should make up a request id when none or a malformed one is given, and echo it', async () => {
    const plain = await fetch(`${service.baseUrl}/chats`);
    expect(plain.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const forged = await fetch(`${service.baseUrl}/chats`, {
      headers: { 'X-Request-Id': 'bad id with spaces {"level":60}' },
    });
    expect(forged.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('Upstream failures in the logs (e2e, built service)', () => {
  let llm: FakeOpenAiServer;
  let service: ServiceProcess;
  beforeAll(async () => {
    llm = await new FakeOpenAiServer().start();
    service = await startService({
      LOG_FORMAT: 'json',
      OPENAI_BASE_URL: llm.baseUrl,
      LLM_MAX_RETRIES: '0',
      AUTO_TITLE: 'off',
    });
  });
  afterAll(async () => {
    await service.stop();
    await llm.close();
  });

  it.each([
    ['plain', 'application/json'],
    ['streamed', 'text/event-stream'],
  ])(
    "should log what the upstream said of its refusal, and keep it from the %s client's answer",
    async (_kind, accept) => {
      const said = 'The model `gpt-9` does not exist or you do not have access to it.';
      llm.enqueue({ kind: 'error', status: 404, body: { error: { message: said, type: 'invalid_request_error' } } });
      const chat = (await (await fetch(`${service.baseUrl}/chats`, { method: 'POST' })).json()) as { id: string };
      const id = `req-upstream-${accept.length}`;
      const response = await fetch(`${service.baseUrl}/chats/${chat.id}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: accept, 'X-Request-Id': id },
        body: JSON.stringify({ content: 'Hello' }),
      });
      const answer = await response.text();
      expect(answer).toContain('The language model answered HTTP 404.');
      expect(answer).not.toContain('gpt-9');

      const line = (l: LogLine) => ofRequest(id)(l) && String(l.msg).includes(said);
      await waitForLogOf(service, line);
      expect(logLinesOf(service).find(line)).toMatchObject({ level: 40 });
    },
  );

  it('should log nothing of a refusal that may quote the request', async () => {
    const content = 'my secret diary entry 9911';
    const said = `Invalid request: messages[1].content ${JSON.stringify(content)} is not allowed.`;
    llm.enqueue({ kind: 'error', status: 400, body: { error: { message: said, type: 'invalid_request_error' } } });
    const chat = (await (await fetch(`${service.baseUrl}/chats`, { method: 'POST' })).json()) as { id: string };
    const response = await fetch(`${service.baseUrl}/chats/${chat.id}/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Request-Id': 'req-upstream-400' },
      body: JSON.stringify({ content }),
    });
    expect(response.status).toBe(502);

    await waitForLogOf(service, (l) => ofRequest('req-upstream-400')(l) && l.msg === 'request failed');
    expect(service.output()).not.toContain('diary');
  });
});
