import { once } from 'node:events';
import { APIUserAbortError } from 'openai';
import { LlmTimeoutError, LlmUnavailableError, LlmUpstreamError } from '../../src/llm/llm-errors';
import { LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';
import { OpenAiLlmOptions, OpenAiLlmProvider } from '../../src/llm/openai-llm.provider';
import { FakeOpenAiServer } from '../support/fake-openai-server';

/** The rejection of `promise`; fails the test if it resolves instead. */
async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  const outcome = await promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) => ({ error }),
  );
  if ('resolved' in outcome) throw new Error(`Expected a rejection, got ${JSON.stringify(outcome.resolved)}`);
  return outcome.error;
}

/** Reads `parts` to the end into `seen`, which keeps what arrived before a rejection. */
async function collect(parts: AsyncIterable<LlmStreamPart>, seen: LlmStreamPart[] = []): Promise<LlmStreamPart[]> {
  for await (const part of parts) seen.push(part);
  return seen;
}

const delta = (content: string): LlmStreamPart => ({ type: 'delta', content });

describe('OpenAiLlmProvider', () => {
  let server: FakeOpenAiServer;
  const provider = (options: Partial<OpenAiLlmOptions> = {}) =>
    new OpenAiLlmProvider({ apiKey: 'test-key', baseUrl: server.baseUrl, timeoutMs: 2_000, maxRetries: 0, ...options });
  const request: LlmRequest = {
    model: 'gpt-4.1-mini',
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'What is 2 + 2?' },
    ],
    maxOutputTokens: 256,
  };

  beforeEach(async () => {
    server = await new FakeOpenAiServer().start();
  });
  afterEach(async () => {
    jest.useRealTimers();
    await server.close();
  });

  it('should return the content, model and usage of a reply and send the model, messages, max_tokens and key', async () => {
    server.enqueue({
      kind: 'reply',
      content: 'Four.',
      model: 'gpt-4.1-mini-2025-04-14',
      usage: { prompt_tokens: 21, completion_tokens: 2 },
    });

    const reply = await provider().complete(request);

    expect(reply).toEqual({
      content: 'Four.',
      model: 'gpt-4.1-mini-2025-04-14',
      usage: { promptTokens: 21, completionTokens: 2 },
      reason: 'stop',
    });
    expect(server.requests).toHaveLength(1);
    const [seen] = server.requests;
    expect(seen).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(seen.headers.authorization).toBe('Bearer test-key');
    expect(seen.body).toMatchObject({ model: 'gpt-4.1-mini', messages: request.messages, max_tokens: 256 });
    expect(seen.body).not.toHaveProperty('max_completion_tokens');
  });

  it('should send frozen messages reused across calls as they are, and a changed unfrozen one as it is now', async () => {
    const history = request.messages.map((message) => Object.freeze({ ...message }));
    const latest = { role: 'user' as const, content: 'And "3 + 3"?\n' };
    server.enqueue({ kind: 'reply', content: 'Four.' }, { kind: 'reply', content: 'Six.' });

    const llm = provider();
    await llm.complete({ ...request, messages: [...history, latest] });
    latest.content = 'And 4 + 4?';
    await llm.complete({ ...request, messages: [...history, latest] });

    expect(server.requests.map((seen) => seen.body)).toEqual([
      expect.objectContaining({ messages: [...request.messages, { role: 'user', content: 'And "3 + 3"?\n' }] }),
      expect.objectContaining({ messages: [...request.messages, { role: 'user', content: 'And 4 + 4?' }] }),
    ]);
  });

  it('should send any text exactly, the first time and from what it kept', async () => {
    const texts = ['plain', 'line\nbreak', 'say "hi"', 'back\\slash', '\u0001', '\u2028', 'lone \ud800', 'é😀'];
    const messages = texts.map((content) => Object.freeze({ role: 'user' as const, content }));
    server.enqueue({ kind: 'reply', content: 'One.' }, { kind: 'reply', content: 'Two.' });

    const llm = provider();
    await llm.complete({ ...request, messages });
    await llm.complete({ ...request, messages });

    for (const seen of server.requests) expect((seen.body as { messages: unknown }).messages).toEqual(messages);
  });

  it('should report null usage when the server sends none', async () => {
    server.enqueue({ kind: 'reply', content: 'ok', usage: null });
    expect(await provider().complete(request)).toEqual({
      content: 'ok',
      model: 'gpt-4.1-mini',
      usage: null,
      reason: 'stop',
    });
  });

  it('should turn HTTP 500 into LlmUpstreamError', async () => {
    server.enqueue({ kind: 'error', status: 500 });
    expect(await failureOf(provider().complete(request))).toBeInstanceOf(LlmUpstreamError);
    expect(server.requests).toHaveLength(1);
  });

  it('should retry a 429 once, then report LlmUnavailableError with the Retry-After seconds', async () => {
    const rateLimited = { kind: 'error', status: 429, headers: { 'retry-after': '7', 'retry-after-ms': '5' } } as const;
    server.enqueue(rateLimited, rateLimited);

    const error = await failureOf(provider({ maxRetries: 1 }).complete(request));

    expect(error).toBeInstanceOf(LlmUnavailableError);
    expect((error as LlmUnavailableError).retryAfterSeconds).toBe(7);
    expect(server.requests).toHaveLength(2);
  });

  it('should turn HTTP 503 into LlmUnavailableError', async () => {
    server.enqueue({ kind: 'error', status: 503 });
    const error = await failureOf(provider().complete(request));
    expect(error).toBeInstanceOf(LlmUnavailableError);
    expect((error as LlmUnavailableError).retryAfterSeconds).toBeUndefined();
  });

  it('should report LlmTimeoutError when the server does not answer within timeoutMs', async () => {
    server.enqueue({ kind: 'hang' });
    const abandoned = once(server, 'abandoned');

    const error = await failureOf(provider({ timeoutMs: 200 }).complete(request));

    expect(error).toBeInstanceOf(LlmTimeoutError);
    await abandoned;
    expect(server.requests).toHaveLength(1);
  });

  it('should report LlmTimeoutError when the body stalls after the headers', async () => {
    server.enqueue({ kind: 'stall' });
    const abandoned = once(server, 'abandoned');

    const error = await failureOf(provider({ timeoutMs: 200 }).complete(request));

    expect(error).toBeInstanceOf(LlmTimeoutError);
    await abandoned;
  });

  it('should turn a 404 from a wrong base URL into LlmUpstreamError', async () => {
    const wrongBase = provider({ baseUrl: server.baseUrl.replace(/\/v1$/, '/v0') });
    expect(await failureOf(wrongBase.complete(request))).toBeInstanceOf(LlmUpstreamError);
    expect(server.requests.map(({ path }) => path)).toEqual(['/v0/chat/completions']);
  });

  it('should turn a body that is not JSON into LlmUpstreamError', async () => {
    server.enqueue({ kind: 'malformed' });
    expect(await failureOf(provider().complete(request))).toBeInstanceOf(LlmUpstreamError);
  });

  it('should turn a reply without choices into LlmUpstreamError', async () => {
    server.enqueue({ kind: 'no-choices' });
    expect(await failureOf(provider().complete(request))).toBeInstanceOf(LlmUpstreamError);
  });

  it('should turn a connection cut before the first byte into LlmUnavailableError', async () => {
    server.enqueue({ kind: 'cut' });
    expect(await failureOf(provider().complete(request))).toBeInstanceOf(LlmUnavailableError);
    expect(server.requests).toHaveLength(1);
  });

  it('should succeed when a retry after a 503 succeeds', async () => {
    server.enqueue(
      { kind: 'error', status: 503, headers: { 'retry-after-ms': '1' } },
      { kind: 'reply', content: 'Back.' },
    );

    const reply = await provider({ maxRetries: 2 }).complete(request);

    expect(reply.content).toBe('Back.');
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1].body).toEqual(server.requests[0].body);
  });

  it('should cancel the upstream call when the signal is aborted', async () => {
    server.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const abandoned = once(server, 'abandoned');

    const call = failureOf(provider().complete({ ...request, signal: controller.signal }));
    await server.waitForRequests(1);
    controller.abort();

    expect(await call).toBeInstanceOf(APIUserAbortError);
    await abandoned;
  });

  it('should not contact the server when the signal is already aborted', async () => {
    const error = await failureOf(provider().complete({ ...request, signal: AbortSignal.abort() }));
    expect(error).toBeInstanceOf(APIUserAbortError);
    expect(server.requests).toHaveLength(0);
  });

  describe('streaming', () => {
    it('should yield the deltas in order, then the model and usage, having asked for a stream with usage', async () => {
      server.enqueue({
        kind: 'reply',
        pieces: ['Two', ' plus', ' two', ' is', ' four.'],
        model: 'gpt-4.1-mini-2025-04-14',
        usage: { prompt_tokens: 21, completion_tokens: 5 },
      });

      const parts = await collect(provider().stream(request));

      expect(parts).toEqual([
        delta('Two'),
        delta(' plus'),
        delta(' two'),
        delta(' is'),
        delta(' four.'),
        {
          type: 'finish',
          model: 'gpt-4.1-mini-2025-04-14',
          usage: { promptTokens: 21, completionTokens: 5 },
          reason: 'stop',
        },
      ]);
      expect(server.requests).toHaveLength(1);
      expect(server.requests[0].body).toMatchObject({
        model: 'gpt-4.1-mini',
        messages: request.messages,
        max_tokens: 256,
        stream: true,
        stream_options: { include_usage: true },
      });
    });

    it('should yield a delta as soon as it arrives, before the rest of the reply is sent', async () => {
      server.enqueue({ kind: 'reply', pieces: ['Four', '.'], holdAfter: 1 });
      const parts = provider().stream(request)[Symbol.asyncIterator]();

      // The server sends nothing more until released.
      expect(await parts.next()).toEqual({ done: false, value: delta('Four') });
      server.release();

      expect(await parts.next()).toEqual({ done: false, value: delta('.') });
      expect(await parts.next()).toMatchObject({ done: false, value: { type: 'finish' } });
      expect(await parts.next()).toEqual({ done: true, value: undefined });
    });

    it.each([
      ['a stream cut mid-way', 'cut-mid-stream'],
      ['a body that ends with neither a finish reason nor [DONE]', 'end-mid-stream'],
    ] as const)(
      'should reject %s with LlmUpstreamError after yielding the deltas that arrived',
      async (_case, kind) => {
        server.enqueue({ kind, pieces: ['Two', ' plus'] });
        const seen: LlmStreamPart[] = [];

        const error = await failureOf(collect(provider().stream(request), seen));

        expect(error).toBeInstanceOf(LlmUpstreamError);
        expect(seen).toEqual([delta('Two'), delta(' plus')]);
      },
    );

    it("should finish with the upstream's finish reason", async () => {
      server.enqueue({ kind: 'reply', pieces: ['Two', ' plus'], finishReason: 'length' });

      const parts = await collect(provider().stream(request));

      expect(parts[parts.length - 1]).toMatchObject({ type: 'finish', reason: 'length' });
    });

    it('should finish at [DONE] though the body stays open, and let go of it once it has been silent for timeoutMs', async () => {
      server.enqueue({ kind: 'reply', pieces: ['Four', '.'], afterDone: 'stall' });
      let abandonedYet = false;
      const abandoned = once(server, 'abandoned').then(() => (abandonedYet = true));

      // With the body open for longer than the test may run, the reply must not wait for its end.
      const parts = await collect(provider({ timeoutMs: 60_000 }).stream(request));

      expect(parts).toEqual([delta('Four'), delta('.'), expect.objectContaining({ type: 'finish', reason: 'stop' })]);
      expect(abandonedYet).toBe(false);
      server.enqueue({ kind: 'reply', pieces: ['Five.'], afterDone: 'stall' });
      await collect(provider({ timeoutMs: 1_000 }).stream(request));
      await abandoned;
    });

    it('should let go of a body that keeps sending after [DONE] once timeoutMs has passed', async () => {
      server.enqueue({ kind: 'reply', pieces: ['Four', '.'], afterDone: 'trickle' });
      const abandoned = once(server, 'abandoned');

      const parts = await collect(provider({ timeoutMs: 1_000 }).stream(request));

      expect(parts).toEqual([delta('Four'), delta('.'), expect.objectContaining({ type: 'finish' })]);
      await abandoned;
    });

    it('should take a whole completion from a server that ignores stream: true as the reply', async () => {
      server.enqueue({
        kind: 'reply',
        content: 'Four.',
        model: 'gpt-4.1-mini-2025-04-14',
        usage: { prompt_tokens: 21, completion_tokens: 2 },
        finishReason: 'length',
        ignoreStream: true,
      });

      const parts = await collect(provider().stream(request));

      expect(server.requests[0].body).toMatchObject({ stream: true });
      expect(parts).toEqual([
        delta('Four.'),
        {
          type: 'finish',
          model: 'gpt-4.1-mini-2025-04-14',
          usage: { promptTokens: 21, completionTokens: 2 },
          reason: 'length',
        },
      ]);
    });

    it.each([
      ['breaks off', 'end-mid-stream', LlmUpstreamError, 'could not be read'],
      ['is not JSON', 'malformed', LlmUpstreamError, 'could not be read'],
      ['has no choices', 'no-choices', LlmUpstreamError, 'without choices'],
      ['stalls', 'stall', LlmTimeoutError, 'LLM_TIMEOUT_MS'],
    ] as const)(
      'should reject a whole completion that %s, from a server that ignores stream: true',
      async (_case, kind, type, detail) => {
        server.enqueue({ kind, ignoreStream: true });

        const error = await failureOf(collect(provider({ timeoutMs: 200 }).stream(request)));

        expect(error).toBeInstanceOf(type);
        expect((error as Error).message).toContain(detail);
      },
    );

    it('should reject an event that is not JSON with LlmUpstreamError after the deltas before it', async () => {
      server.enqueue({ kind: 'malformed-mid-stream', pieces: ['Two'] });
      const seen: LlmStreamPart[] = [];

      const error = await failureOf(collect(provider().stream(request), seen));

      expect(error).toBeInstanceOf(LlmUpstreamError);
      expect(seen).toEqual([delta('Two')]);
    });

    it('should reject an error event mid-stream with LlmUpstreamError', async () => {
      server.enqueue({ kind: 'error-mid-stream', pieces: ['Two'] });
      const seen: LlmStreamPart[] = [];

      const error = await failureOf(collect(provider().stream(request), seen));

      expect(error).toBeInstanceOf(LlmUpstreamError);
      expect(seen).toEqual([delta('Two')]);
    });

    it('should report LlmTimeoutError and cancel the request when the stream stalls for timeoutMs', async () => {
      server.enqueue({ kind: 'stall-mid-stream', pieces: ['Two'] });
      const abandoned = once(server, 'abandoned');
      const seen: LlmStreamPart[] = [];

      const error = await failureOf(collect(provider({ timeoutMs: 200 }).stream(request), seen));

      expect(error).toBeInstanceOf(LlmTimeoutError);
      expect(seen).toEqual([delta('Two')]);
      await abandoned;
    });

    it('should not count the time the consumer takes between parts as the server stalling', async () => {
      // Only setTimeout is faked, so time can pass while the consumer holds a part, without a sleep.
      jest.useFakeTimers({
        doNotFake: ['Date', 'hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'setInterval'],
      });
      server.enqueue({ kind: 'reply', pieces: ['Four', '.'] });
      const parts = provider({ timeoutMs: 200 }).stream(request)[Symbol.asyncIterator]();
      expect(await parts.next()).toEqual({ done: false, value: delta('Four') });

      jest.advanceTimersByTime(1_000);

      expect(await parts.next()).toEqual({ done: false, value: delta('.') });
      expect(await parts.next()).toMatchObject({ done: false, value: { type: 'finish' } });
    });

    it('should reject and cancel the upstream request when the signal is aborted after the first delta', async () => {
      server.enqueue({ kind: 'reply', pieces: ['Two', ' plus', ' two'], holdAfter: 1 });
      const controller = new AbortController();
      const abandoned = once(server, 'abandoned');
      const seen: LlmStreamPart[] = [];

      const error = await failureOf(
        (async () => {
          for await (const part of provider().stream({ ...request, signal: controller.signal })) {
            seen.push(part);
            controller.abort();
          }
        })(),
      );

      expect(error).toBeInstanceOf(APIUserAbortError);
      expect(seen).toEqual([delta('Two')]);
      await abandoned;
    });

    it('should cancel the upstream request when the consumer stops reading', async () => {
      server.enqueue({ kind: 'reply', pieces: ['Two', ' plus', ' two'], holdAfter: 1 });
      const abandoned = once(server, 'abandoned');

      const parts = provider().stream(request)[Symbol.asyncIterator]();
      expect(await parts.next()).toEqual({ done: false, value: delta('Two') });
      await parts.return!(undefined);

      await abandoned;
    });
  });
});
