import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { ServiceProcess, startService } from '../support/service-process';
import { createTestApp } from '../support/test-app';

const ASSETS = [
  ['/playground/playground.js', /^text\/javascript/],
  ['/playground/playground.css', /^text\/css/],
  ['/playground/favicon.svg', /^image\/svg\+xml/],
  // The Markdown renderer and sanitizer, from their packages: scripts, or a strict browser refuses them.
  ['/playground/marked.esm.js', /^text\/javascript/],
  ['/playground/purify.es.mjs', /^text\/javascript/],
] as const;

describe('Playground page (e2e)', () => {
  let app: NestExpressApplication;
  const http = () => request(app.getHttpServer());

  beforeAll(async () => {
    app = await createTestApp();
  });
  afterAll(() => app.close());

  it('should serve the page at / under a CSP that allows no inline script', async () => {
    const response = await http().get('/').expect(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = response.headers['content-security-policy'] as string;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("script-src-attr 'none'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe/);
    // Scripts come from files only, and no element carries an event handler attribute.
    expect(response.text.match(/<script[^>]*>/g)).toEqual(['<script type="module" src="/playground/playground.js">']);
    expect(response.text).not.toMatch(/\son[a-z]+=/i);
    for (const [path] of ASSETS) expect(response.text).toContain(path);
  });

  it.each(ASSETS)('should serve %s with its media type', async (path, contentType) => {
    const response = await http().get(path).expect(200);
    expect(response.headers['content-type']).toMatch(contentType);
    expect(response.headers['cache-control']).toBe('no-cache');
  });

  it('should serve the Markdown renderer and sanitizer as the ES modules the page imports', async () => {
    for (const path of ['/playground/marked.esm.js', '/playground/purify.es.mjs']) {
      const response = await http().get(path).expect(200);
      expect(response.text).toMatch(/(^|;)export\s*\{[^}]*\}/m);
    }
  });

  it('should answer 304 to a page the browser already has', async () => {
    const first = await http().get('/playground/playground.js').expect(200);
    await http().get('/playground/playground.js').set('If-None-Match', first.headers.etag).expect(304);
  });

  it('should answer a problem for files it does not serve', async () => {
    for (const path of ['/playground/nope.js', '/playground/..%2Fplayground.controller.ts', '/playground/index.html']) {
      const response = await http().get(path).expect(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it('should leave the page out of the OpenAPI document', async () => {
    const document = (await http().get('/docs-json').expect(200)).body as { paths: Record<string, unknown> };
    expect(Object.keys(document.paths).filter((path) => path === '/' || path.startsWith('/playground'))).toEqual([]);
  });
});

describe('Playground page with API keys (e2e)', () => {
  let app: NestExpressApplication;
  beforeAll(async () => {
    app = await createTestApp({ env: { API_KEYS: 'acme:acme-key-0123456789abcdef' } });
  });
  afterAll(() => app.close());

  it('should serve the page and its assets without a key, while the API needs one', async () => {
    for (const path of ['/', ...ASSETS.map(([asset]) => asset)])
      await request(app.getHttpServer()).get(path).expect(200);
    await request(app.getHttpServer()).get('/chats').expect(401);
  });
});

describe('Playground page (e2e, built service)', () => {
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await startService();
  });
  afterAll(() => service.stop());

  it('should serve the page and its assets from a clean build', async () => {
    const page = await fetch(`${service.baseUrl}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Konko Chat playground</title>');
    for (const [path, contentType] of ASSETS) {
      const asset = await fetch(`${service.baseUrl}${path}`);
      expect({ path, status: asset.status }).toEqual({ path, status: 200 });
      expect(asset.headers.get('content-type')).toMatch(contentType);
    }
  });
});
