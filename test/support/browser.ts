import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BrowserContext, chromium, Locator, Page } from 'playwright-core';

/** Debian's `chromium` package (`.ci/run` installs it); CHROMIUM_PATH points elsewhere. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Headless, and quiet: no calls to outside hosts (this network refuses them), no first-run chores. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];

/** Where browser tests write their screenshots (gitignored). */
export const SCREENSHOT_DIR = resolve(__dirname, '../browser/screenshots');

/**
 * Chromium is required: without it each browser test fails here, saying what to install, rather
 * than being left out.
 */
function requireChromium(): void {
  if (existsSync(CHROMIUM_PATH)) return;
  throw new Error(
    `The browser tests need Chromium at ${CHROMIUM_PATH} (CHROMIUM_PATH): install it with ` +
      '`apt-get install chromium`, or set CHROMIUM_PATH to a Chromium (see docs/testing.md)',
  );
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** A fresh Chromium with a fresh user data dir, removed on close. */
export async function launchChromium(viewport = { width: 1280, height: 800 }): Promise<TestBrowser> {
  requireChromium();
  const userDataDir = mkdtempSync(join(tmpdir(), 'konko-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Saves a screenshot of the whole page, or of one element, as `<SCREENSHOT_DIR>/<name>.png`. */
export async function screenshot(target: Page | Locator, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await ('goto' in target ? target.screenshot({ path, fullPage: true }) : target.screenshot({ path }));
}
