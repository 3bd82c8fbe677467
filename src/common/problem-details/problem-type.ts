/** Problem type URIs: `about:blank` for plain HTTP failures, a URN per domain problem. */
export const problemTypeUri = (code: string) => `urn:konko:problem:${code}`;
