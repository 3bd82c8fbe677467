/**
 * Jest runs each test file in its own realm, but `fetch` is Node's: when it aborts, it rejects with
 * a DOMException that is not an `Error` of the test realm. The `openai` client then loses the
 * error's name and reports its own timeout as a plain connection error, which never happens
 * outside jest. This re-throws such rejections as errors of the test realm, with the same name and
 * message; requests still go over real HTTP. Returns the function that puts the real fetch back.
 */
export function useSameRealmFetch(): () => void {
  const realFetch = globalThis.fetch;
  globalThis.fetch = (input, init) =>
    realFetch(input, init).catch((error: unknown) => {
      if (error instanceof Error || typeof error !== 'object' || error === null) throw error;
      const { name, message } = error as { name?: unknown; message?: unknown };
      throw Object.assign(new Error(String(message), { cause: error }), { name: String(name) });
    });
  return () => {
    globalThis.fetch = realFetch;
  };
}
