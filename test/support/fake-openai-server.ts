import { EventEmitter } from 'node:events';
import { createServer, IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { AddressInfo, Socket } from 'node:net';

export interface FakeUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

/**
 * What the server does with one request. A request with `stream: true` gets its answer as
 * `text/event-stream` chunks, like OpenAI's. The `*-mid-stream` faults are meant for those; a plain
 * request gets the start of a JSON body and then the same fault (an `error-mid-stream`: HTTP 500).
 */
/**
 * How the server answers a request. With `ignoreStream`, a request that asked for a stream gets the
 * answer it would get without one (a whole chat.completion), as some servers give.
 */
export type FakeBehaviour = { ignoreStream?: boolean } &
  /**
   * A chat.completion, or its chunks when streamed. `content` defaults to `pieces` joined, else
   * `reply to: <last message>`; `pieces` (one chunk each) to the content split into words; `model`
   * to the requested one. With `holdAfter`, a stream pauses after that many pieces until `release()`.
   * `finishReason` (default `stop`) is why the model stopped, as OpenAI says: `length`, `content_filter` …
   * `afterDone`: what a stream does after its `[DONE]`, instead of ending the body: destroy the
   * connection (`cut`), leave it open in silence (`stall`) or keep sending comments (`trickle`);
   * `afterFinish`: the same, right after
   * the chunk with the finish reason, before the usage and `[DONE]`.
   */
  (
    | {
        kind: 'reply';
        content?: string;
        pieces?: string[];
        model?: string;
        usage?: FakeUsage | null;
        holdAfter?: number;
        finishReason?: string;
        afterDone?: 'cut' | 'stall' | 'trickle';
        afterFinish?: 'cut' | 'stall';
      }
    /** An HTTP error with an OpenAI-style JSON error body. */
    | { kind: 'error'; status: number; body?: unknown; headers?: Record<string, string> }
    /** Never answers; the socket stays open until the client gives up or the server closes. */
    | { kind: 'hang' }
    /** Status 200 and the start of a body, then silence: the headers arrive, the rest never does. */
    | { kind: 'stall' }
    /** Status 200 and a body that is not JSON (streamed: an event whose data is not JSON). */
    | { kind: 'malformed' }
    /** A well-formed chat.completion with an empty `choices` (streamed: only such chunks). */
    | { kind: 'no-choices' }
    /** Destroys the connection before a single response byte. */
    | { kind: 'cut' }
    /** Streams `pieces` (default PARTIAL_PIECES), then destroys the connection. */
    | { kind: 'cut-mid-stream'; pieces?: string[] }
    /**
     * Streams `pieces`, then ends the body as a whole one ends, but with no `finish_reason` and no
     * `[DONE]`: what a server or proxy that closes mid-reply leaves.
     */
    | { kind: 'end-mid-stream'; pieces?: string[] }
    /** Streams `pieces`, then goes silent with the connection open. */
    | { kind: 'stall-mid-stream'; pieces?: string[] }
    /** Streams `pieces`, then an event whose data is not JSON, then ends the body. */
    | { kind: 'malformed-mid-stream'; pieces?: string[] }
    /** Streams `pieces`, then an OpenAI-style `{"error": …}` event, then ends the body. */
    | { kind: 'error-mid-stream'; pieces?: string[] }
  );

export interface FakeChatRequestBody {
  model?: string;
  messages?: { role: string; content: string }[];
  max_tokens?: number;
  max_completion_tokens?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
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
/** What the `*-mid-stream` faults send before failing, unless told otherwise. */
export const PARTIAL_PIECES = ['Partial', ' reply'];

/**
 * An OpenAI-compatible Chat Completions server on loopback, for driving the real `openai` client.
 * Answers each request with the next scripted behaviour, or a plain reply when none is queued.
 *
 * Events: `request` (RecordedRequest) once a request's body has been read; `held` (RecordedRequest)
 * when a stream pauses at its `holdAfter`; `abandoned` (RecordedRequest) when the client closes the
 * connection before the answer was complete.
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
  private releaseHeld: () => void = () => undefined;
  private readonly heldUntilRelease = new Promise<void>((resolve) => (this.releaseHeld = resolve));

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

  /** Lets held streams go on. Once called, later holds pass at once. */
  release(): void {
    this.releaseHeld();
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
    const behaviour = this.queue.shift() ?? { kind: 'reply' };
    if (recorded.body?.stream === true && !behaviour.ignoreStream) await this.respondStreamed(behaviour, recorded, res);
    else this.respond(behaviour, recorded, res);
  }

  private respond(behaviour: FakeBehaviour, request: RecordedRequest, res: ServerResponse): void {
    switch (behaviour.kind) {
      case 'reply':
        sendJson(res, 200, completion(request.body, behaviour));
        return;
      case 'error':
        sendError(res, behaviour);
        return;
      case 'error-mid-stream':
        sendError(res, { kind: 'error', status: 500 });
        return;
      case 'hang':
        return;
      case 'end-mid-stream':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"chatcmpl-fake",');
        return;
      case 'stall':
      case 'stall-mid-stream':
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"id":"chatcmpl-fake",');
        return;
      case 'malformed':
      case 'malformed-mid-stream':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{not json');
        return;
      case 'no-choices':
        sendJson(res, 200, { id: 'x', object: 'chat.completion', choices: [] });
        return;
      case 'cut':
        if (res.socket) this.destroy(res.socket);
        return;
      case 'cut-mid-stream':
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"id":"chatcmpl-fake",', () => {
          if (res.socket) this.destroy(res.socket);
        });
        return;
    }
  }

  private async respondStreamed(behaviour: FakeBehaviour, request: RecordedRequest, res: ServerResponse) {
    const body = request.body;
    const chunk = (fields: object) => ({
      id: 'chatcmpl-fake',
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: (behaviour.kind === 'reply' && behaviour.model) || body?.model || 'fake-model',
      ...fields,
    });
    const pieceEvents = (pieces: string[]) =>
      pieces.map((content, i) =>
        chunk({
          choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content } : { content }, finish_reason: null }],
        }),
      );
    switch (behaviour.kind) {
      case 'reply': {
        const { pieces, usage } = reply(body, behaviour);
        const events: unknown[] = pieceEvents(pieces);
        const finishReason = behaviour.finishReason ?? 'stop';
        events.push(chunk({ choices: [{ index: 0, delta: {}, finish_reason: finishReason }] }));
        if (!behaviour.afterFinish) {
          if (body?.stream_options?.include_usage) events.push(chunk({ choices: [], usage }));
          events.push('[DONE]');
        }
        await this.sendEvents(res, request, events, behaviour.holdAfter);
        const after = behaviour.afterFinish ?? behaviour.afterDone;
        if (after === 'cut' && res.socket) this.destroy(res.socket);
        else if (after === 'trickle') {
          const comments = setInterval(() => res.write(': still here\n\n'), 20);
          res.once('close', () => clearInterval(comments));
        } else if (after !== 'stall') res.end();
        return;
      }
      case 'stall':
        startEvents(res).write('data: {"id":"chatcmpl-fake",');
        return;
      case 'malformed':
        startEvents(res).end('data: {not json\n\n');
        return;
      case 'no-choices':
        await this.sendEvents(res, request, [chunk({ choices: [] }), '[DONE]']);
        res.end();
        return;
      case 'cut-mid-stream':
        await this.sendEvents(res, request, pieceEvents(behaviour.pieces ?? PARTIAL_PIECES));
        if (res.socket) this.destroy(res.socket);
        return;
      case 'end-mid-stream':
        await this.sendEvents(res, request, pieceEvents(behaviour.pieces ?? PARTIAL_PIECES));
        res.end();
        return;
      case 'stall-mid-stream':
        await this.sendEvents(res, request, pieceEvents(behaviour.pieces ?? PARTIAL_PIECES));
        return;
      case 'malformed-mid-stream':
        await this.sendEvents(res, request, pieceEvents(behaviour.pieces ?? PARTIAL_PIECES));
        res.end('data: {not json\n\n');
        return;
      case 'error-mid-stream':
        await this.sendEvents(res, request, pieceEvents(behaviour.pieces ?? PARTIAL_PIECES));
        await this.sendEvents(res, request, [
          { error: { message: 'Scripted mid-stream error', type: 'server_error' } },
        ]);
        res.end();
        return;
      default:
        this.respond(behaviour, request, res);
    }
  }

  /** Writes each event once the previous one is flushed, pausing after `holdAfter` of them. */
  private async sendEvents(res: ServerResponse, request: RecordedRequest, events: unknown[], holdAfter?: number) {
    if (!res.headersSent) startEvents(res);
    for (const [i, event] of events.entries()) {
      if (i === holdAfter) {
        this.emit('held', request);
        await this.heldUntilRelease;
      }
      if (res.destroyed) return;
      const data = typeof event === 'string' ? event : JSON.stringify(event);
      await new Promise((resolve) => res.write(`data: ${data}\n\n`, resolve));
    }
  }

  private destroy(socket: Socket): void {
    this.endedByServer.add(socket);
    socket.destroy();
  }
}

function reply(body: FakeChatRequestBody | undefined, behaviour: Extract<FakeBehaviour, { kind: 'reply' }>) {
  const last = body?.messages?.[body.messages.length - 1];
  const content = behaviour.content ?? behaviour.pieces?.join('') ?? `reply to: ${last?.content}`;
  const usage = behaviour.usage === undefined ? DEFAULT_USAGE : behaviour.usage;
  return {
    content,
    pieces: behaviour.pieces ?? content.match(/\s*\S+|\s+/g) ?? [],
    usage: usage && { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
}

function completion(body: FakeChatRequestBody | undefined, behaviour: Extract<FakeBehaviour, { kind: 'reply' }>) {
  const { content, usage } = reply(body, behaviour);
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: behaviour.model ?? body?.model ?? 'fake-model',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content, refusal: null },
        finish_reason: behaviour.finishReason ?? 'stop',
        logprobs: null,
      },
    ],
    ...(usage ? { usage } : {}),
  };
}

function startEvents(res: ServerResponse): ServerResponse {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }).flushHeaders();
  return res;
}

function sendError(res: ServerResponse, behaviour: Extract<FakeBehaviour, { kind: 'error' }>): void {
  const body = behaviour.body ?? { error: { message: `Scripted HTTP ${behaviour.status}`, type: 'server_error' } };
  sendJson(res, behaviour.status, body, behaviour.headers);
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
