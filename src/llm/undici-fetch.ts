import { Agent, request } from 'undici';

/**
 * The signal's reason, as fetch rejects; an Error of this realm when it is not one here (under
 * jest, Node's DOMException is not), since the client reads the name of Errors only.
 */
function abortError(reason: unknown): unknown {
  if (reason instanceof Error || typeof reason !== 'object' || reason === null) return reason;
  const { name, message } = reason as { name?: unknown; message?: unknown };
  return Object.assign(new Error(String(message), { cause: reason }), { name: String(name) });
}

/** As many as `fetch` follows. */
const MAX_REDIRECTIONS = 20;

/**
 * The `fetch` the openai client is given: undici's `request` underneath, the same HTTP client as
 * Node's own fetch without the WHATWG layer. The client only reads the status, the headers and a
 * body to iterate, and on this service's streamed replies fetch's web streams cost about as much
 * CPU again as everything else the client does. Failures reject as fetch's do (a TypeError
 * "fetch failed" with the cause, or the signal's reason), so the client maps them as before.
 */
export function undiciFetch(dispatcher = new Agent({ maxRedirections: MAX_REDIRECTIONS })): typeof fetch {
  return async (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input);
    const { signal } = init;
    let response;
    try {
      response = await request(url, {
        dispatcher,
        method: (init.method ?? 'GET') as 'GET',
        headers: init.headers instanceof Headers ? init.headers : new Headers(init.headers),
        body: init.body as string | Uint8Array | null | undefined,
        signal: signal ?? undefined,
      });
    } catch (error) {
      if (signal?.aborted) throw abortError(signal.reason);
      throw new TypeError('fetch failed', { cause: error });
    }
    const { statusCode, headers, body } = response;
    const responseHeaders = new Headers();
    for (const [name, value] of Object.entries(headers)) {
      if (Array.isArray(value)) for (const each of value) responseHeaders.append(name, each);
      else if (value !== undefined) responseHeaders.append(name, value);
    }
    return {
      ok: statusCode >= 200 && statusCode < 300,
      status: statusCode,
      statusText: '',
      url,
      redirected: false,
      headers: responseHeaders,
      // A Node stream: the client iterates it, and cancels it through its iterator's `return`.
      body,
      bodyUsed: false,
      text: () => body.text(),
      json: () => body.json(),
      arrayBuffer: () => body.arrayBuffer(),
      blob: () => body.blob(),
    } as unknown as Response;
  };
}
