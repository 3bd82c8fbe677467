import { Controller, Get, NotFoundException, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Public } from '../auth/public.decorator';
import { SkipRateLimit } from '../common/http/skip-rate-limit.decorator';

/** Next to this file in `src/` (tests) and in `dist/` (nest-cli.json copies the assets). */
const PUBLIC_DIR = join(__dirname, 'public');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  contentType: string;
  body: Buffer;
}

function loadAsset(file: string, path = join(PUBLIC_DIR, file)): Asset {
  return { contentType: CONTENT_TYPES[file.slice(file.lastIndexOf('.'))], body: readFileSync(path) };
}

/**
 * The self-contained ES module builds of the Markdown parser and the sanitizer the page imports,
 * served from the packages installed (dependencies: node_modules is there at run time).
 * DOMPurify's package exports only its CommonJS build to require(); its ES build lies beside it.
 */
const VENDOR_FILES: Record<string, string> = {
  'marked.esm.js': require.resolve('marked'),
  'purify.es.mjs': join(dirname(require.resolve('dompurify')), 'purify.es.mjs'),
};

/**
 * The playground page at `/` and its assets under `/playground/`: plain files, read once at
 * start-up (a build without them fails to start instead of serving a broken page). Only the files
 * named here are served. Public: the page asks for the API key itself.
 */
@ApiExcludeController()
@Controller()
@Public()
@SkipRateLimit()
export class PlaygroundController {
  private readonly page = loadAsset('index.html');
  private readonly assets = new Map([
    ...['playground.js', 'playground.css', 'favicon.svg'].map((file) => [file, loadAsset(file)] as const),
    ...Object.entries(VENDOR_FILES).map(([file, path]) => [file, loadAsset(file, path)] as const),
  ]);

  @Get()
  index(@Res() response: Response): void {
    this.send(response, this.page);
  }

  @Get('playground/:file')
  asset(@Param('file') file: string, @Res() response: Response): void {
    const asset = this.assets.get(file);
    if (!asset) throw new NotFoundException(`The playground has no file named ${JSON.stringify(file)}.`);
    this.send(response, asset);
  }

  /** Revalidated on every load (Express answers 304 to a matching ETag), so a new build shows at once. */
  private send(response: Response, asset: Asset): void {
    response.set({ 'Content-Type': asset.contentType, 'Cache-Control': 'no-cache' }).send(asset.body);
  }
}
