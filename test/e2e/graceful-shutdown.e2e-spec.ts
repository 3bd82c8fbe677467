import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { FakeOpenAiServer, PARTIAL_PIECES } from '../support/fake-openai-server';
import { ServiceProcess, startService } from '../support/service-process';

interface StoredMessage {
  seq: number;
  role: string;
  status: string;
  content: string;
}

/**
 * A JSON POST whose body the test sends when it chooses, as a slow upload does: `accepted` resolves
 * once the service has read its headers (it answers `Expect: 100-continue` before the handler runs),
 * `response` with the answer, or rejects if the connection is cut first. Its connection is kept
 * alive for as long as the service keeps it (Node's default agent closes one idle for 5 s).
 */
function slowUpload(url: string, body: unknown) {
  const text = JSON.stringify(body);
  const agent = new Agent({ keepAlive: true });
  const request = httpRequest(url, {
    agent,
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), Expect: '100-continue' },
  });
  const accepted = once(request, 'continue').then(() => undefined);
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    request.on('error', reject);
    request.on('response', (res) => {
      let received = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (received += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: received }));
      res.on('error', reject);
    });
  });
  request.flushHeaders();
  return { accepted, response, finish: () => request.end(text), close: () => agent.destroy() };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The responses a server wrote one after another on a connection (`text` read as latin1), by Content-Length. */
function responsesIn(text: string): RawResponse[] {
  const responses: RawResponse[] = [];
  for (let rest = text; rest.length > 0;) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd < 0) throw new Error(`not a whole response: ${JSON.stringify(rest)}`);
    const [statusLine, ...lines] = rest.slice(0, headEnd).split('\r\n');
    const headers = Object.fromEntries(
      lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
    );
    const bodyEnd = headEnd + 4 + Number(headers['content-length'] ?? 0);
    responses.push({ status: Number(statusLine.split(' ')[1]), headers, body: rest.slice(headEnd + 4, bodyEnd) });
    rest = rest.slice(bodyEnd);
  }
  return responses;
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
    service.child.kill('SIGTERM');
    await service.waitForOutput('SIGTERM: draining');
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

  it('should let a request in flight that is no turn finish within the grace, and answer it', async () => {
    service = await startService({ ...env(), SHUTDOWN_GRACE_MS: '60000' });
    const upload = slowUpload(`${service.baseUrl}/chats`, { title: 'Uploaded slowly' });
    await upload.accepted;

    const exited = once(service.child, 'exit');
    service.child.kill('SIGTERM');
    await service.waitForOutput('SIGTERM: draining');
    await expect(fetch(`${service.baseUrl}/health/live`)).rejects.toThrow();
    // The client is slow, not the test: its body ends 3 s on, past the 2 s that shutdown used to
    // give requests, well within the grace.
    await delay(3000);
    upload.finish();

    const answer = await upload.response;
    expect(answer.status).toBe(201);
    expect(JSON.parse(answer.body)).toMatchObject({ title: 'Uploaded slowly' });
    // Its keep-alive connection, idle now, closes at once: the process does not wait out the grace.
    const [code] = await exited;
    expect(code).toBe(0);
    upload.close();

    service = await startService(env());
    const chats = (await (await fetch(`${service.baseUrl}/chats`)).json()) as { data: { title: string }[] };
    expect(chats.data.map((chat) => chat.title)).toEqual(['Uploaded slowly']);
  }, 30_000);

  it('should answer readiness 503 and liveness 200 once shutdown begins, on a connection it still serves', async () => {
    service = await startService({ ...env(), SHUTDOWN_GRACE_MS: '60000' });
    const { hostname, port } = new URL(service.baseUrl);
    const socket = connect(Number(port), hostname);
    socket.setEncoding('latin1');
    let received = '';
    socket.on('data', (chunk: string) => (received += chunk));
    const closed = once(socket, 'close');
    const continued = new Promise<void>((resolve) => {
      const check = () => {
        if (!received.includes('\r\n\r\n')) return;
        socket.off('data', check);
        resolve();
      };
      socket.on('data', check);
    });
    // An upload whose headers the service has read (it answers 100 Continue) and whose body it waits for.
    const body = JSON.stringify({ title: 'In flight' });
    socket.write(
      `POST /chats HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    await continued;

    const exited = once(service.child, 'exit');
    service.child.kill('SIGTERM');
    await service.waitForOutput('SIGTERM: draining');
    // New connections are refused now: the probes follow the body on the upload's connection.
    socket.write(
      `${body}GET /health/ready HTTP/1.1\r\nHost: ${hostname}\r\n\r\n` +
        `GET /health/live HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`,
    );
    await closed;

    const [goOn, created, ready, live] = responsesIn(received);
    expect([goOn.status, created.status, ready.status, live.status]).toEqual([100, 201, 503, 200]);
    expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(ready.body)).toMatchObject({
      type: 'urn:konko:problem:not-ready',
      checks: { shutdown: { status: 'down' } },
    });
    const [code] = await exited;
    expect(code).toBe(0);
  });

  it('should cut a request in flight that runs past the grace, and still exit 0', async () => {
    service = await startService({ ...env(), SHUTDOWN_GRACE_MS: '500' });
    const upload = slowUpload(`${service.baseUrl}/chats`, { title: 'Never finished' });
    await upload.accepted;

    const exited = once(service.child, 'exit');
    service.child.kill('SIGTERM');
    await expect(upload.response).rejects.toThrow();
    const [code] = await exited;
    expect(code).toBe(0);
    upload.close();
  });
});
