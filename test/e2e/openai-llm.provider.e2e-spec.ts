import { once } from 'node:events';
import { APIUserAbortError } from 'openai';
import { LlmTimeoutError, LlmUnavailableError, LlmUpstreamError } from '../../src/llm/llm-errors';
import { LlmRequest } from '../../src/llm/llm-provider';
import { OpenAiLlmOptions, OpenAiLlmProvider } from '../../src/llm/openai-llm.provider';
import { FakeOpenAiServer } from '../support/fake-openai-server';
import { useSameRealmFetch } from '../support/same-realm-fetch';

/** The rejection of `promise`; fails the test if it resolves instead. */
async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  const outcome = await promise.then(
    (value) => ({ resolved: value }),
    (error: unknown) => ({ error }),
  );
  if ('resolved' in outcome) throw new Error(`Expected a rejection, got ${JSON.stringify(outcome.resolved)}`);
  return outcome.error;
}

describe('OpenAiLlmProvider', () => {
  let server: FakeOpenAiServer;
  let restoreFetch: () => void;
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
    restoreFetch = useSameRealmFetch();
    server = await new FakeOpenAiServer().start();
  });
  afterEach(async () => {
    await server.close();
    restoreFetch();
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
    });
    expect(server.requests).toHaveLength(1);
    const [seen] = server.requests;
    expect(seen).toMatchObject({ method: 'POST', path: '/v1/chat/completions' });
    expect(seen.headers.authorization).toBe('Bearer test-key');
    expect(seen.body).toMatchObject({ model: 'gpt-4.1-mini', messages: request.messages, max_tokens: 256 });
    expect(seen.body).not.toHaveProperty('max_completion_tokens');
  });

  it('should report null usage when the server sends none', async () => {
    server.enqueue({ kind: 'reply', content: 'ok', usage: null });
    expect(await provider().complete(request)).toEqual({ content: 'ok', model: 'gpt-4.1-mini', usage: null });
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
});
