import { EventEmitter } from 'node:events';
import { createServer, IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, Socket } from 'node:net';

export interface FakeUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

/** What the server does with one request. */
export type FakeBehaviour =
  /** A chat.completion. `content` defaults to `reply to: <last message>`, `model` to the requested one. */
  | { kind: 'reply'; content?: string; model?: string; usage?: FakeUsage | null }
  /** An HTTP error with an OpenAI-style JSON error body. */
  | { kind: 'error'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Never answers; the socket stays open until the client gives up or the server closes. */
  | { kind: 'hang' }
  /** Status 200 and the start of a body, then silence: the headers arrive, the rest never does. */
  | { kind: 'stall' }
  /** Status 200, `application/json`, a body that is not JSON. */
  | { kind: 'malformed' }
  /** A well-formed chat.completion with an empty `choices`. */
  | { kind: 'no-choices' }
  /** Destroys the connection before a single response byte. */
  | { kind: 'cut' };

export interface FakeChatRequestBody {
  model?: string;
  messages?: { role: string; content: string }[];
  max_tokens?: number;
  max_completion_tokens?: number;
  [key: string]: unknown;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body; undefined when the body was not JSON. */
  body: FakeChatRequestBody | undefined;
}

export const DEFAULT_USAGE: FakeUsage = { prompt_tokens: 12, completion_tokens: 5 };

/**
 * An OpenAI-compatible Chat Completions server on loopback, for driving the real `openai` client.
 * Answers each request with the next scripted behaviour, or a plain reply when none is queued.
 *
 * Events: `request` (RecordedRequest) once a request's body has been read; `abandoned`
 * (RecordedRequest) when the client closes the connection before the answer was sent.
 */
export class FakeOpenAiServer extends EventEmitter {
  readonly requests: RecordedRequest[] = [];
  private readonly queue: FakeBehaviour[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server: Server = createServer((req, res) => {
    this.handle(req, res).catch(() => req.socket.destroy());
  });
  private port: number | undefined;
  /** Sockets the server itself ends (`cut`, `close()`) are not the client abandoning a request. */
  private readonly endedByServer = new WeakSet<Socket>();

  constructor() {
    super();
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
  }

  /** The `/v1` base URL, as the `openai` client and OPENAI_BASE_URL expect it. */
  get baseUrl(): string {
    if (this.port === undefined) throw new Error('FakeOpenAiServer is not started');
    return `http://127.0.0.1:${this.port}/v1`;
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Destroys open sockets too, so hanging requests end and jest can exit. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) this.destroy(socket);
    await closed;
  }

  /** Scripts the next requests' answers, in order. */
  enqueue(...behaviours: FakeBehaviour[]): this {
    this.queue.push(...behaviours);
    return this;
  }

  /** Resolves once `count` requests have arrived (at once if they already have). */
  waitForRequests(count: number): Promise<RecordedRequest[]> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.requests.length < count) return;
        this.off('request', check);
        resolve(this.requests.slice(0, count));
      };
      this.on('request', check);
      check();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      body: parseJson(raw),
    };
    this.requests.push(recorded);
    res.once('close', () => {
      if (!res.writableFinished && !this.endedByServer.has(req.socket)) this.emit('abandoned', recorded);
    });
    this.emit('request', recorded);

    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      sendJson(res, 404, { error: { message: `No route for ${req.method} ${req.url}`, type: 'not_found' } });
      return;
    }
    this.respond(this.queue.shift() ?? { kind: 'reply' }, recorded, res);
  }

  private respond(behaviour: FakeBehaviour, request: RecordedRequest, res: ServerResponse): void {
    switch (behaviour.kind) {
      case 'reply':
        sendJson(res, 200, completion(request.body, behaviour));
        return;
      case 'error':
        sendJson(
          res,
          behaviour.status,
          behaviour.body ?? { error: { message: `Scripted HTTP ${behaviour.status}`, type: 'server_error' } },
          behaviour.headers,
        );
        return;
      case 'hang':
        return;
      case 'stall':
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"id":"chatcmpl-fake",');
        return;
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{not json');
        return;
      case 'no-choices':
        sendJson(res, 200, { id: 'x', object: 'chat.completion', choices: [] });
        return;
      case 'cut':
        if (res.socket) this.destroy(res.socket);
        return;
    }
  }

  private destroy(socket: Socket): void {
    this.endedByServer.add(socket);
    socket.destroy();
  }
}

function completion(body: FakeChatRequestBody | undefined, reply: Extract<FakeBehaviour, { kind: 'reply' }>) {
  const last = body?.messages?.[body.messages.length - 1];
  const usage = reply.usage === undefined ? DEFAULT_USAGE : reply.usage;
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: reply.model ?? body?.model ?? 'fake-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: reply.content ?? `reply to: ${last?.content}`, refusal: null },
        finish_reason: 'stop',
        logprobs: null,
      },
    ],
    ...(usage ? { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } } : {}),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(raw: string): FakeChatRequestBody | undefined {
  try {
    return JSON.parse(raw) as FakeChatRequestBody;
  } catch {
    return undefined;
  }
}
