import { NestExpressApplication } from '@nestjs/platform-express';
import { readFileSync } from 'node:fs';
import type { Locator, Page, Request } from 'playwright-core';
import request from 'supertest';
import { ChatDto } from '../../src/chats/dto/chat.dto';
import { LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';
import { MessageDto, MessagePageDto } from '../../src/messages/dto/message.dto';
import { SearchHitDto } from '../../src/search/dto/search-hit.dto';
import { ExportDocumentDto } from '../../src/transfer/dto/export-document.dto';
import { launchChromium, screenshot, TestBrowser } from '../support/browser';
import { branchedDocument } from '../support/chat-documents';
import { deferred } from '../support/deferred';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp, listenOnLoopback } from '../support/test-app';
import { until } from '../support/until';

jest.setTimeout(60_000);

/*
 * The functions passed to page.evaluate() run in the page. The page globals they use are declared
 * here, in this module only: the DOM library itself would leak into every suite ts-jest compiles
 * in the same worker, and its types clash with Node's (fetch bodies, streams).
 */
interface PageElement {
  id: string;
  tagName: string;
  dataset: Record<string, string | undefined>;
  disabled?: boolean;
  checkVisibility(): boolean;
}
declare const document: {
  activeElement: PageElement | null;
  documentElement: { scrollWidth: number };
  querySelectorAll(selectors: string): ArrayLike<PageElement>;
};
declare const sessionStorage: Record<string, string>;
declare const location: { hash: string };
declare const history: { replaceState(data: null, unused: string, url: string): void };
/** What an injected script would set, were one to run. */
declare const window: { pwned?: unknown };
declare function getComputedStyle(element: PageElement): { outlineStyle: string; outlineWidth: string };

/** Rejects when the request's signal aborts, as a real upstream call does. */
function untilAborted(req: LlmRequest): Promise<never> {
  return new Promise((_resolve, reject) => {
    const signal = req.signal!;
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** A streamed reply that sends `first`, then holds until `gate` opens before the rest and the finish. */
async function* heldReply(gate: Promise<void>, first: string, rest: string): AsyncGenerator<LlmStreamPart> {
  yield { type: 'delta', content: first };
  await gate;
  yield { type: 'delta', content: rest };
  yield { type: 'finish', model: 'fake-model', usage: { promptTokens: 10, completionTokens: 3 } };
}

const text = async (locator: Locator) => (await locator.textContent())?.trim();

describe('Playground (browser)', () => {
  let app: NestExpressApplication;
  let baseUrl: string;
  let browser: TestBrowser | undefined;
  /** Errors the page reported (uncaught exceptions, CSP violations, failed loads). */
  let pageErrors: string[];

  async function start(
    options: {
      llm?: RecordingLlmProvider;
      env?: Record<string, string>;
      viewport?: { width: number; height: number };
      /** Runs before the page first loads, e.g. to route its requests. */
      beforeLoad?: (page: Page) => Promise<unknown>;
    } = {},
  ) {
    app = await createTestApp({ llm: options.llm, env: options.env });
    baseUrl = await listenOnLoopback(app);
    browser = await launchChromium(options.viewport);
    pageErrors = [];
    browser.page.on('pageerror', (error) => pageErrors.push(error.message));
    browser.page.on('console', (message) => {
      // A 401 the page answers by asking for the key is the browser's to log, not the page's error.
      if (message.type() === 'error' && !/status of 401/.test(message.text())) pageErrors.push(message.text());
    });
    await options.beforeLoad?.(browser.page);
    await browser.page.goto(baseUrl);
    return browser.page;
  }

  afterEach(async () => {
    await browser?.close();
    browser = undefined;
    app.getHttpServer().closeAllConnections();
    await app.close();
  });

  const http = () => request(app.getHttpServer());
  const messageInput = (page: Page) => page.getByLabel('Message', { exact: true });
  const assistantReply = (page: Page, status: string, hasText?: string) =>
    page.locator(`#messages .message--assistant[data-status="${status}"]`, { hasText });

  async function startChat(page: Page, systemPrompt = '') {
    await page.getByLabel('System prompt').fill(systemPrompt);
    await page.getByRole('button', { name: 'New chat' }).click();
    await page.locator('#chat-list [aria-current="true"]').waitFor();
    await messageInput(page).waitFor({ state: 'visible' });
  }

  /** Sends a message from the composer and waits for its reply, the `replies`th of the page. */
  async function say(page: Page, content: string, replies: number) {
    await messageInput(page).fill(content);
    await messageInput(page).press('Enter');
    await page
      .locator('#messages .message--assistant[data-status="completed"]')
      .nth(replies - 1)
      .waitFor();
  }

  /** What the page shows: the text of each message, in order. */
  const shown = (page: Page) => page.locator('#messages .message__content').allTextContents();
  const userMessage = (page: Page, hasText: string) => page.locator('#messages .message--user', { hasText });
  /** Edit, Save, Regenerate and the version buttons, enabled. */
  const enabledBranchButtons = (page: Page) => page.locator('#messages .branch-action:enabled');
  const openChatId = (page: Page) => new URL(page.url()).hash.slice(1);
  const storedChat = async (chatId: string) => (await http().get(`/chats/${chatId}`).expect(200)).body as ChatDto;
  /** A chat made through the API, as another client would: its id. */
  const createdChatId = async (title: string) =>
    ((await http().post('/chats').send({ title }).expect(201)).body as ChatDto).id;
  const stored = async (chatId: string, query = '') =>
    ((await http().get(`/chats/${chatId}/messages${query}`).expect(200)).body as MessagePageDto).data;
  const contents = (messages: MessageDto[]) => messages.map((m) => m.content);
  const nextPatch = (page: Page) => page.waitForRequest((req) => req.method() === 'PATCH');
  const searchFor = async (page: Page, q: string) => {
    await page.getByLabel('Search messages').fill(q);
    await page.getByLabel('Search messages').press('Enter');
  };
  /** Clicks the button and reads the file it downloads. */
  const download = async (page: Page, button: string) => {
    const saving = page.waitForEvent('download');
    await page.getByRole('button', { name: button }).click();
    const file = await saving;
    return { name: file.suggestedFilename(), text: readFileSync((await file.path())!, 'utf8') };
  };
  const jsonFile = (name: string, body: unknown) => ({
    name,
    mimeType: 'application/json',
    buffer: Buffer.from(JSON.stringify(body)),
  });

  it('should send a message and show the reply as it streams in', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = () =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Once upon ' };
        yield { type: 'delta', content: 'a time' };
        await rest.promise;
        yield { type: 'delta', content: ', a chat began.' };
        yield { type: 'finish', model: 'fake-model', usage: { promptTokens: 20, completionTokens: 7 } };
      })();
    const page = await start({ llm });
    await page.getByText('Provider: recording').waitFor();

    await startChat(page, 'You tell very short stories.');
    await messageInput(page).fill('Tell me a story about a chat');
    await messageInput(page).press('Enter');

    // The first deltas show while the reply is still being written.
    await assistantReply(page, 'streaming', 'Once upon a time').waitFor();
    await page.getByRole('button', { name: 'Stop' }).and(page.locator(':enabled')).waitFor();
    await screenshot(page, '01-reply-streaming');

    rest.resolve();
    const reply = assistantReply(page, 'completed');
    await reply.waitFor();
    expect(await text(reply.locator('.message__content'))).toBe('Once upon a time, a chat began.');
    expect(await text(reply.locator('.message__model'))).toBe('fake-model');
    expect(await page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);
    expect(await text(page.locator('#chat-meta'))).toContain('Model: gpt-4.1-mini');
    expect(await text(page.locator('#chat-system'))).toBe('System prompt: You tell very short stories.');
    expect(llm.calls[0].request.messages[0]).toEqual({ role: 'system', content: 'You tell very short stories.' });

    await page.getByText('Summary', { exact: true }).click();
    await page.locator('.summary-counts', { hasText: '2 messages (1 yours, 1 replies)' }).waitFor();
    await screenshot(page, '02-reply-done-with-summary');
    expect(pageErrors).toEqual([]);
  });

  it('should render a reply as Markdown as it streams, after a reload too, and keep your message as typed', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    const wide = `const line = '${'x'.repeat(200)}';`;
    llm.respond = () =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: '## A plan\n\nDo **this** ' };
        yield { type: 'delta', content: 'first:\n\n- run `npm test`\n' };
        await rest.promise;
        yield { type: 'delta', content: '- read the ' };
        yield { type: 'delta', content: 'output\n\n```js\nconst ok = 1 < 2;\n' };
        yield { type: 'delta', content: `${wide}\n\`\`\`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n` };
        yield { type: 'delta', content: '> Quoted.\n\nSee [the docs](https://example.com/docs).' };
        yield { type: 'finish', model: 'fake-model', usage: { promptTokens: 20, completionTokens: 40 } };
      })();
    const page = await start({ llm });
    await startChat(page);
    const typed = 'Plan **it** with `code`,\n# please';
    await messageInput(page).fill(typed);
    await messageInput(page).press('Enter');

    // Rendered while it streams, and again after a reload mid-reply, from the text read so far.
    const streaming = assistantReply(page, 'streaming');
    for (const when of ['streaming', 'reloaded']) {
      if (when === 'reloaded') await page.reload();
      await streaming.locator('li code', { hasText: 'npm test' }).waitFor();
      expect(await text(streaming.getByRole('heading', { level: 2 }))).toBe('A plan');
      expect(await text(streaming.locator('strong'))).toBe('this');
      expect(await text(streaming.locator('.message__content'))).not.toMatch(/[#*`]/);
    }
    await screenshot(streaming, '30-markdown-reply-streaming');

    rest.resolve();
    const reply = assistantReply(page, 'completed');
    await reply.getByRole('link', { name: 'the docs' }).waitFor();
    for (const when of ['completed', 'reopened']) {
      if (when === 'reopened') await page.reload();
      const content = reply.locator('.message__content');
      await content.getByRole('link').waitFor();
      expect(await content.getByRole('listitem').allTextContents()).toEqual(['run npm test', 'read the output']);
      expect(await content.locator('pre > code').textContent()).toBe(`const ok = 1 < 2;\n${wide}\n`);
      expect(await content.getByRole('cell').allTextContents()).toEqual(['1', '2']);
      expect(await text(content.locator('blockquote'))).toBe('Quoted.');
      const link = content.getByRole('link', { name: 'the docs' });
      expect(await link.getAttribute('href')).toBe('https://example.com/docs');
      expect(await link.getAttribute('target')).toBe('_blank');
      expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
    }
    // Your message shows as you typed it: no Markdown, every line.
    const mine = page.locator('#messages .message--user .message__content');
    expect(await mine.textContent()).toBe(typed);
    expect(await mine.innerText()).toBe(typed);
    expect(await mine.locator('*').count()).toBe(0);
    await screenshot(page, '31-markdown-reply');

    // On a phone the code block scrolls within the reply: nothing is wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(page, '32-markdown-reply-phone');
    expect(pageErrors).toEqual([]);
  });

  it('should render no HTML, script or javascript: link a reply holds, as it streams or restored', async () => {
    const llm = new RecordingLlmProvider();
    const attack =
      'Look: <img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> ' +
      '[click](javascript:window.pwned=3) <a href="javascript:window.pwned=4">there</a> and **safe**.\n\n' +
      '<div onmouseover="window.pwned=5"><iframe src="javascript:window.pwned=6"></iframe></div>\n\n' +
      '![pic](javascript:window.pwned=7)';
    // Streamed word by word: the tags arrive cut in pieces, as from a real model.
    llm.respond = () => ({ content: attack, model: 'fake-model', usage: null });
    const page = await start({ llm });
    await startChat(page);
    await say(page, 'Tell me something', 1);

    for (const when of ['streamed', 'reloaded']) {
      if (when === 'reloaded') await page.reload();
      const content = assistantReply(page, 'completed').locator('.message__content');
      await content.locator('strong', { hasText: 'safe' }).waitFor();
      // The HTML shows as the text it is; nothing in it became an element.
      expect(await content.textContent()).toContain('<script>window.pwned=2</script>');
      expect(await content.textContent()).toContain('<img src=x onerror="window.pwned=1">');
      const unsafe = 'img, script, iframe, div, [onerror], [onmouseover], [href^="javascript" i], [src]';
      expect(await content.locator(unsafe).count()).toBe(0);
      // The links lost their javascript: address; clicked, they do nothing.
      for (const name of ['click', 'pic']) await content.getByText(name, { exact: true }).click();
      expect(await page.evaluate(() => window.pwned)).toBeUndefined();
    }
    expect(pageErrors).toEqual([]);
  });

  it('should stop a reply through the service, which stores what was written as incomplete', async () => {
    const llm = new RecordingLlmProvider();
    llm.respond = (req, call) =>
      call > 1
        ? echoReply(req)
        : (async function* (): AsyncGenerator<LlmStreamPart> {
            yield { type: 'delta', content: 'Partial ' };
            yield { type: 'delta', content: 'answer' };
            await untilAborted(req);
          })();
    const page = await start({ llm });
    const failedRequests: string[] = [];
    page.on('requestfailed', (req) => failedRequests.push(`${req.method()} ${req.url()}`));
    await startChat(page);
    await messageInput(page).fill('Write me a long essay');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Partial answer').waitFor();

    const stop = page.waitForRequest((req) => req.method() === 'POST' && req.url().endsWith('/stop'));
    await page.getByRole('button', { name: 'Stop' }).click();
    const chatId = openChatId(page);
    expect(new URL((await stop).url()).pathname).toBe(`/chats/${chatId}/stop`);
    expect((await (await stop).response())?.status()).toBe(202);

    // The stream ends with the stored reply (it has an id, and a Regenerate button): the page kept
    // reading it and cut off no request; the service aborted the upstream call.
    const stopped = assistantReply(page, 'incomplete', 'Partial answer');
    await stopped.getByRole('button', { name: 'Regenerate' }).waitFor();
    expect(await text(stopped.locator('.badge'))).toBe('incomplete (stopped)');
    const [, reply] = await stored(chatId);
    expect(reply).toMatchObject({ role: 'assistant', status: 'incomplete', content: 'Partial answer' });
    expect(await stopped.getAttribute('data-message-id')).toBe(reply.id);
    expect(llm.calls[0].request.signal?.aborted).toBe(true);
    expect(failedRequests).toEqual([]);
    await screenshot(page, '03-reply-stopped');

    await say(page, 'Are you there?', 1);
    expect(await text(assistantReply(page, 'completed').locator('.message__content'))).toBe('reply to: Are you there?');

    // Reopened from the service, the stored reply is marked incomplete too.
    await page.reload();
    const reopened = assistantReply(page, 'incomplete');
    await reopened.waitFor();
    expect(await text(reopened.locator('.message__content'))).toBe('Partial answer');
    expect(await text(reopened.locator('.badge'))).toBe('incomplete');
    expect((await stored(chatId)).map((m) => `${m.role}:${m.status}`)).toEqual([
      'user:completed',
      'assistant:incomplete',
      'user:completed',
      'assistant:completed',
    ]);
    await screenshot(page, '04-stopped-reply-reopened');
    expect(pageErrors).toEqual([]);
  });

  it('should stop a regeneration and an edit through the service too', async () => {
    const llm = new RecordingLlmProvider();
    llm.respond = (req, call) =>
      call === 1
        ? echoReply(req)
        : (async function* (): AsyncGenerator<LlmStreamPart> {
            yield { type: 'delta', content: `Draft ${call}` };
            await untilAborted(req);
          })();
    const page = await start({ llm });
    await startChat(page);
    await say(page, 'Plan a day', 1);

    // Escape stops a regeneration.
    await assistantReply(page, 'completed').getByRole('button', { name: 'Regenerate' }).click();
    await assistantReply(page, 'streaming', 'Draft 2').waitFor();
    await page.keyboard.press('Escape');
    const regenerated = assistantReply(page, 'incomplete', 'Draft 2');
    await regenerated.locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await text(regenerated.locator('.badge'))).toBe('incomplete (stopped)');

    // Stop stops the reply to an edit.
    await userMessage(page, 'Plan a day').getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Edit message').fill('Plan a night');
    await page.getByLabel('Edit message').press('Enter');
    await assistantReply(page, 'streaming', 'Draft 3').waitFor();
    await page.getByRole('button', { name: 'Stop' }).click();
    await userMessage(page, 'Plan a night').locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await text(assistantReply(page, 'incomplete', 'Draft 3').locator('.badge'))).toBe('incomplete (stopped)');
    await screenshot(page, '03b-edit-stopped');

    expect(llm.calls.map((call) => call.request.signal?.aborted)).toEqual([false, true, true]);
    const chatId = openChatId(page);
    expect((await stored(chatId, '?branch=all')).map((m) => `${m.content}:${m.status}`)).toEqual([
      'Plan a day:completed',
      'reply to: Plan a day:completed',
      'Draft 2:incomplete',
      'Plan a night:completed',
      'Draft 3:incomplete',
    ]);
    expect(contents(await stored(chatId))).toEqual(await shown(page));
    expect(pageErrors).toEqual([]);
  });

  it('should resume a reply after a reload, sending the API key, and show it once, as stored', async () => {
    const key = 'acme-key-0123456789abcdef';
    const llm = new RecordingLlmProvider();
    const more = deferred();
    const rest = deferred();
    llm.respond = () =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Once upon ' };
        yield { type: 'delta', content: 'a time' };
        await more.promise;
        yield { type: 'delta', content: ', a chat ' };
        await rest.promise;
        yield { type: 'delta', content: 'began.' };
        yield { type: 'finish', model: 'fake-model', usage: { promptTokens: 20, completionTokens: 7 } };
      })();
    const page = await start({
      llm,
      env: { API_KEYS: `acme:${key}` },
      // The key as the key field keeps it (the API key test enters it by hand).
      beforeLoad: (page) => page.addInitScript((key) => (sessionStorage['konko.playground.apiKey'] = key), key),
    });
    await startChat(page);
    await messageInput(page).fill('Tell me a story');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Once upon a time').waitFor();
    const chatId = openChatId(page);

    // Reloaded, the page shows the reply as far as it had read it and asks for what follows.
    const resume = page.waitForRequest((req) => req.url().endsWith(`/chats/${chatId}/stream`));
    await page.reload();
    const headers = (await resume).headers();
    expect(headers['authorization']).toBe(`Bearer ${key}`);
    expect(headers['last-event-id']).toEqual(expect.any(String));
    await assistantReply(page, 'streaming', 'Once upon a time').waitFor();
    expect(await page.getByRole('button', { name: 'Stop' }).isEnabled()).toBe(true);
    await screenshot(page, '19-resumed-after-reload');

    // What follows is appended once: the text read before the reload is not repeated.
    more.resolve();
    await assistantReply(page, 'streaming', 'Once upon a time, a chat').waitFor();
    expect(await shown(page)).toEqual(['Tell me a story', 'Once upon a time, a chat ']);

    rest.resolve();
    await assistantReply(page, 'completed', 'Once upon a time, a chat began.').waitFor();
    const messages = (
      (await http().get(`/chats/${chatId}/messages`).set('Authorization', `Bearer ${key}`).expect(200))
        .body as MessagePageDto
    ).data;
    expect(messages.map((m) => `${m.role}:${m.status}`)).toEqual(['user:completed', 'assistant:completed']);
    expect(await shown(page)).toEqual(contents(messages));
    expect(llm.calls).toHaveLength(1);
    await screenshot(page, '20-resumed-reply-done');
    expect(pageErrors).toEqual([]);
  });

  it('should resume a reply whose connection drops, from its last event', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = () => heldReply(rest.promise, 'Lost and ', 'found.');
    const page = await start({ llm });
    await startChat(page);
    await messageInput(page).fill('Say something');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Lost and').waitFor();

    // The service drops every connection, the reply's stream with them; the turn goes on.
    const resume = page.waitForResponse((res) => res.url().endsWith('/stream'));
    app.getHttpServer().closeAllConnections();
    expect((await resume).request().headers()['last-event-id']).toEqual(expect.any(String));
    rest.resolve();
    await assistantReply(page, 'completed', 'Lost and found.').waitFor();
    expect(await shown(page)).toEqual(contents(await stored(openChatId(page))));
    expect(await shown(page)).toEqual(['Say something', 'Lost and found.']);
    // The browser reports the stream it lost; nothing else went wrong.
    expect(pageErrors).toEqual(['Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING']);
  });

  it('should stop a reply that waits for its chat once it runs, not the turn it waits for', async () => {
    const llm = new RecordingLlmProvider();
    const first = deferred();
    /** Opens when the upstream receives the first call: the other client's turn then holds the chat. */
    const firstCalled = deferred();
    llm.respond = (req, call) =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        if (call === 1) {
          firstCalled.resolve();
          await Promise.race([first.promise, untilAborted(req)]);
        }
        yield { type: 'delta', content: `Reply ${call}` };
        if (call === 1) yield { type: 'finish', model: 'fake-model', usage: null };
        else await untilAborted(req);
      })();
    const page = await start({ llm });
    const stops: string[] = [];
    page.on('request', (req) => req.url().endsWith('/stop') && stops.push(req.url()));
    await startChat(page);
    const chatId = openChatId(page);
    // Another client's turn holds the chat.
    const other = http()
      .post(`/chats/${chatId}/messages`)
      .send({ content: 'From elsewhere' })
      .then((r) => r);
    await firstCalled.promise;

    await messageInput(page).fill('From the page');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming').waitFor();
    await page.getByRole('button', { name: 'Stop' }).click();
    expect(await page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);

    first.resolve();
    expect((await other).body.assistantMessage).toMatchObject({ status: 'completed', content: 'Reply 1' });
    const stopped = assistantReply(page, 'incomplete');
    await stopped.getByRole('button', { name: 'Regenerate' }).waitFor();
    expect(await text(stopped.locator('.badge'))).toBe('incomplete (stopped)');
    expect(stops).toEqual([`${baseUrl}/chats/${chatId}/stop`]);
    expect((await stored(chatId)).map((m) => `${m.content.replace('Reply 2', '…')}:${m.status}`)).toEqual([
      'From elsewhere:completed',
      'Reply 1:completed',
      'From the page:completed',
      expect.stringMatching(/^…?:incomplete$/), // stopped before or after its first delta
    ]);
    expect(pageErrors).toEqual([]);
  });

  it('should follow a reply still being written when its chat is opened again', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = (req, call) => (call === 1 ? heldReply(rest.promise, 'Still ', 'here.') : echoReply(req));
    const page = await start({ llm });
    await startChat(page);
    await messageInput(page).fill('Are you still there?');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Still').waitFor();
    const firstChat = openChatId(page);

    // In another chat meanwhile: the page no longer reads the reply, which goes on.
    await startChat(page);
    await say(page, 'Meanwhile', 1);
    expect(llm.calls[0].request.signal?.aborted).toBe(false);

    // Opened again, the chat shows the reply so far (every event of its turn) and follows it.
    const follow = page.waitForRequest((req) => req.url().endsWith(`/chats/${firstChat}/stream`));
    await page.locator(`#chat-list button[data-chat-id="${firstChat}"]`).click();
    expect((await follow).headers()['last-event-id']).toBeUndefined();
    await assistantReply(page, 'streaming', 'Still').waitFor();
    expect(await shown(page)).toEqual(['Are you still there?', 'Still ']);
    rest.resolve();
    await assistantReply(page, 'completed', 'Still here.').waitFor();
    expect(await shown(page)).toEqual(contents(await stored(firstChat)));
    expect(pageErrors).toEqual([]);
  });

  it('should show the branch as stored after a reply that followed another client’s messages', async () => {
    const page = await start({ llm: new RecordingLlmProvider() });
    await startChat(page);
    await say(page, 'one', 1);
    const chatId = openChatId(page);
    // Another client writes in the chat the page shows; the page's next message follows it.
    await http().post(`/chats/${chatId}/messages`).send({ content: 'From elsewhere' }).expect(201);
    await say(page, 'two', 2);

    await userMessage(page, 'From elsewhere').waitFor();
    expect(await shown(page)).toEqual(contents(await stored(chatId)));
    expect(await shown(page)).toEqual([
      'one',
      'reply to: one',
      'From elsewhere',
      'reply to: From elsewhere',
      'two',
      'reply to: two',
    ]);
    expect(await enabledBranchButtons(page).count()).toBe(6); // Edit or Regenerate on each
    expect(pageErrors).toEqual([]);
  });

  it('should keep the newer branch when the refresh after an earlier reply answers last', async () => {
    const llm = new RecordingLlmProvider();
    llm.respond = (req, call) =>
      call === 1
        ? echoReply(req)
        : (async function* (): AsyncGenerator<LlmStreamPart> {
            yield { type: 'delta', content: 'Partial answer' };
            await untilAborted(req);
          })();
    const page = await start({
      llm,
      // Notes each response body the page has read: the page goes on from it in the same turn of its event loop.
      beforeLoad: (page) =>
        page.addInitScript({
          content: `
            window.read = [];
            const text = Response.prototype.text;
            Response.prototype.text = function () {
              return text.call(this).then((body) => (window.read.push(this.url), body));
            };`,
        }),
    });
    const refreshesRead = () =>
      page.evaluate(() =>
        (globalThis as unknown as { read: string[] }).read.filter((url) => url.includes('branch=all')),
      );
    await startChat(page);
    const chatId = openChatId(page);
    // The refresh after the first reply: the service answers it at once, the page reads it last.
    const answered = deferred();
    const late = deferred();
    let refreshes = 0;
    await page.route(
      (url) => url.pathname === `/chats/${chatId}/messages` && url.searchParams.get('branch') === 'all',
      async (route) => {
        refreshes += 1;
        if (refreshes > 1) return route.continue();
        const response = await route.fetch();
        answered.resolve();
        await late.promise;
        await route.fulfill({ response });
      },
    );
    const chatAnswered = page.waitForResponse(
      (res) => res.request().method() === 'GET' && new URL(res.url()).pathname === `/chats/${chatId}`,
    );
    await say(page, 'First question', 1);
    await Promise.all([answered.promise, chatAnswered]);

    // The next reply, stopped, and refreshed in its turn.
    await messageInput(page).fill('Second question');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Partial answer').waitFor();
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.locator('#messages .badge', { hasText: 'incomplete (stopped)' }).waitFor();
    await page.locator('#chat-list [aria-current="true"]', { hasText: '4 messages' }).waitFor();
    expect(await refreshesRead()).toHaveLength(2); // the chat's opening, and the second refresh

    late.resolve();
    await page.waitForFunction(
      () => (globalThis as unknown as { read: string[] }).read.filter((url) => url.includes('branch=all')).length === 3,
    );
    expect(await shown(page)).toEqual([
      'First question',
      'reply to: First question',
      'Second question',
      'Partial answer',
    ]);
    expect(await shown(page)).toEqual(contents(await stored(chatId)));
    expect(await text(page.locator('#messages .badge'))).toBe('incomplete (stopped)');
    expect(await text(page.locator('#chat-list [aria-current="true"] .chat-item__meta'))).toMatch(/^4 messages/);
    expect(pageErrors).toEqual([]);
  });

  it('should work with the offline provider out of the box and show provider and model', async () => {
    const page = await start();
    await page.getByText('Provider: offline (no model configured: replies say so)').waitFor();
    await startChat(page, 'You are a friendly travel planner. Keep answers short.');
    for (const [n, content] of [
      'What should I see in Lisbon in one day?',
      'And where do I eat custard tarts?',
    ].entries()) {
      await messageInput(page).fill(content);
      await messageInput(page).press('Enter');
      await page.locator('#messages .message--assistant[data-status="completed"]').nth(n).waitFor();
    }
    const replies = page.locator('#messages .message--assistant');
    expect(await text(replies.first().locator('.message__content'))).toMatch(/^No language model is configured/);
    expect(await text(replies.first().locator('.message__model'))).toBe('offline');
    await page.locator('#chat-list [aria-current="true"]', { hasText: 'What should I see in Lisbon' }).waitFor();

    await page.getByText('Summary', { exact: true }).click();
    await page.locator('.summary-counts', { hasText: '4 messages' }).waitFor();
    await page.locator('.topics').waitFor();
    await screenshot(page, 'playground');
    expect(pageErrors).toEqual([]);
  });

  it('should be usable on a phone-sized screen with the keyboard alone, and escape what it shows', async () => {
    const page = await start({ viewport: { width: 390, height: 844 } });
    await page.getByText('Provider: offline', { exact: false }).waitFor();
    const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
    const tabTo = async (id: string) => {
      for (let i = 0; i < 30 && (await focused()) !== id; i += 1) await page.keyboard.press('Tab');
      expect(await focused()).toBe(id);
    };

    await tabTo('system-prompt');
    await page.keyboard.type('Answer in one line.');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter'); // New chat
    await page.locator('#chat-list [aria-current="true"]').waitFor();
    expect(await focused()).toBe('message-input');

    const hostile = 'Hi <b>there</b> & <img src=x onerror="document.title=1"> "quotes"';
    await page.keyboard.type(hostile);
    await page.keyboard.press('Enter');
    const reply = assistantReply(page, 'completed');
    await reply.waitFor();
    expect(await text(page.locator('#messages .message--user .message__content'))).toBe(hostile);
    expect(await text(reply.locator('.message__content'))).toContain(`You said: "${hostile}"`);
    // The chat's automatic title comes from the message too; it shows as text as well.
    await page.locator('#chat-list [aria-current="true"]', { hasText: 'Hi <b>there</b>' }).waitFor();
    expect(await page.locator('body b, body img').count()).toBe(0);

    await tabTo('summary-toggle');
    await page.keyboard.press('Enter');
    await page.locator('.summary-counts', { hasText: '2 messages' }).waitFor();

    // Every visible control is reached by Tab, and shows where the focus is.
    const controls = await page.evaluate(() =>
      Array.from(document.querySelectorAll('a[href], button, input, textarea, summary'))
        .filter((node) => node.checkVisibility() && !node.disabled)
        .map((node, index) => {
          node.dataset.probe = String(index);
          return index;
        }),
    );
    const reached = new Set<string>();
    for (let i = 0; i < controls.length * 2 + 2; i += 1) {
      await page.keyboard.press('Tab');
      const probe = await page.evaluate(() => {
        const node = document.activeElement;
        const style = node ? getComputedStyle(node) : null;
        return { probe: node?.dataset.probe, outline: style ? `${style.outlineStyle} ${style.outlineWidth}` : '' };
      });
      if (probe.probe === undefined) continue;
      reached.add(probe.probe);
      expect(probe.outline).toBe('solid 3px');
    }
    expect([...reached].map(Number).sort((a, b) => a - b)).toEqual(controls);

    // Nothing is wider than the phone.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(page, '05-phone-keyboard');
    expect(pageErrors).toEqual([]);
  });

  it('should ask for the API key when the service needs one, and send it on every API call', async () => {
    const key = 'acme-key-0123456789abcdef';
    const apiCalls: { path: string; authorization?: string }[] = [];
    const page = await start({
      env: { API_KEYS: `acme:${key}` },
      beforeLoad: async (page) =>
        page.on('request', (req) => {
          const path = new URL(req.url()).pathname;
          if (path.startsWith('/chats')) apiCalls.push({ path, authorization: req.headers()['authorization'] });
        }),
    });

    // The page itself needs no key; its first API call answers 401 and the page asks for one.
    const notice = page.locator('#key-notice');
    await page.locator('#key-panel[open]').waitFor();
    await notice.filter({ hasText: 'This service needs an API key' }).waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('api-key');
    await screenshot(page, '08-api-key-asked');

    await page.keyboard.type('not-the-key-at-all');
    await page.keyboard.press('Enter');
    await notice.filter({ hasText: 'The API key is not valid.' }).waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('api-key');

    await page.keyboard.type(key);
    await page.keyboard.press('Enter');
    await page.getByText('No chats yet.').waitFor();
    expect(await text(page.locator('#key-summary'))).toBe('API key: set');

    await startChat(page);
    await messageInput(page).fill('Hello with a key');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'completed', 'Hello with a key').waitFor();
    const withKey = apiCalls.slice(apiCalls.findIndex((call) => call.authorization === `Bearer ${key}`));
    expect(withKey.length).toBeGreaterThan(3);
    expect(withKey.filter((call) => call.authorization !== `Bearer ${key}`)).toEqual([]);
    expect(withKey.map((call) => call.path)).toContainEqual(expect.stringMatching(/^\/chats\/[^/]+\/messages$/));
    // Kept in the tab's sessionStorage, beside the open chat (which holds no key).
    const kept = await page.evaluate(() => ({ ...sessionStorage }));
    expect(kept['konko.playground.apiKey']).toBe(key);
    expect(Object.values(kept).filter((value) => value.includes(key))).toEqual([key]);
    // The chat belongs to the key's tenant.
    const chats = (await http().get('/chats').set('Authorization', `Bearer ${key}`).expect(200)).body;
    expect(chats.data).toHaveLength(1);
    expect(pageErrors).toEqual([]);
  });

  it('should edit a message in place and stream the reply of its new branch', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = (req, call) => (call === 3 ? heldReply(rest.promise, 'Sand and ', 'sea.') : echoReply(req));
    const page = await start({ llm });
    await startChat(page);
    await say(page, 'Plan a day in Lisbon', 1);
    await say(page, 'Add a museum', 2);

    // Escape leaves the message as it was, with the keyboard back on its Edit button.
    const museum = userMessage(page, 'Add a museum');
    await museum.getByRole('button', { name: 'Edit' }).click();
    const field = page.getByLabel('Edit message');
    expect(await field.inputValue()).toBe('Add a museum');
    await page.keyboard.press('Escape');
    await field.waitFor({ state: 'detached' });
    await museum.locator('.message__action:focus').waitFor();

    await page.keyboard.press('Enter');
    await field.fill('Add a beach');
    await screenshot(page, '09-editing');
    await field.press('Enter');

    // The edited message and its reply leave the page; the new reply streams after the new text.
    await assistantReply(page, 'streaming', 'Sand and').waitFor();
    expect(await shown(page)).toEqual([
      'Plan a day in Lisbon',
      'reply to: Plan a day in Lisbon',
      'Add a beach',
      'Sand and ',
    ]);
    expect(await page.getByRole('button', { name: 'Stop' }).isEnabled()).toBe(true);
    expect(await enabledBranchButtons(page).count()).toBe(0);
    await screenshot(page, '10-edit-streaming');

    rest.resolve();
    await assistantReply(page, 'completed', 'Sand and sea.').waitFor();
    await userMessage(page, 'Add a beach').locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await enabledBranchButtons(page).count()).toBeGreaterThan(0);
    await screenshot(page, '11-edit-done');

    // Stored as a new branch beside the edited message, after the same parent; it is the one shown.
    const chatId = openChatId(page);
    const all = await stored(chatId, '?branch=all');
    expect(contents(all)).toEqual([
      'Plan a day in Lisbon',
      'reply to: Plan a day in Lisbon',
      'Add a museum',
      'reply to: Add a museum',
      'Add a beach',
      'Sand and sea.',
    ]);
    expect(all[4].parentId).toBe(all[2].parentId);
    expect(all[4].parentId).toBe(all[1].id);
    expect(contents(await stored(chatId))).toEqual(await shown(page));
    expect(llm.calls[2].request.messages.slice(1).map((m) => m.content)).toEqual([
      'Plan a day in Lisbon',
      'reply to: Plan a day in Lisbon',
      'Add a beach',
    ]);
    expect(pageErrors).toEqual([]);
  });

  it('should put the branch back and reopen the edit when the service refuses it', async () => {
    const page = await start({ llm: new RecordingLlmProvider() });
    await startChat(page);
    await say(page, 'one', 1);
    await say(page, 'two', 2);
    const refusal = { type: 'urn:konko:problem:chat-busy', title: 'Chat busy', status: 429 };
    await page.route(/\/messages$/, (route) =>
      route.fulfill({ status: 429, contentType: 'application/problem+json', body: JSON.stringify(refusal) }),
    );
    await userMessage(page, 'two').getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Edit message').fill('deux');
    await page.getByLabel('Edit message').press('Enter');

    await page.locator('#notice', { hasText: 'Chat busy' }).waitFor();
    expect(await shown(page)).toEqual(['one', 'reply to: one', 'two', 'reply to: two']);
    expect(await page.getByLabel('Edit message').inputValue()).toBe('deux');
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('TEXTAREA');
    // Every button is back as it was: enabled, now that no reply streams.
    expect(await enabledBranchButtons(page).count()).toBe(await page.locator('#messages .branch-action').count());
    expect(contents(await stored(openChatId(page), '?branch=all'))).toEqual(await shown(page));
    await screenshot(page, '11b-edit-refused');
    expect(pageErrors.filter((error) => !/status of 429/.test(error))).toEqual([]);
  });

  it('should regenerate a reply as it streams, and flip back to the first one', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = (req, call) => (call === 2 ? heldReply(rest.promise, 'Another ', 'take.') : echoReply(req));
    const page = await start({ llm });
    await startChat(page);
    await say(page, 'Tell me a joke', 1);

    await assistantReply(page, 'completed').getByRole('button', { name: 'Regenerate' }).click();
    await assistantReply(page, 'streaming', 'Another').waitFor();
    expect(await shown(page)).toEqual(['Tell me a joke', 'Another ']);
    expect(await enabledBranchButtons(page).count()).toBe(0);
    await screenshot(page, '12-regenerate-streaming');

    rest.resolve();
    const again = assistantReply(page, 'completed', 'Another take.');
    await again.locator('.versions', { hasText: '2 / 2' }).waitFor();
    await screenshot(page, '13-regenerated');

    // Stored as a second reply to the same message, and current.
    const chatId = openChatId(page);
    const [question, firstReply, secondReply] = await stored(chatId, '?branch=all');
    expect([firstReply, secondReply]).toEqual([
      expect.objectContaining({ content: 'reply to: Tell me a joke', parentId: question.id }),
      expect.objectContaining({ content: 'Another take.', parentId: question.id }),
    ]);
    expect((await storedChat(chatId)).currentMessageId).toBe(secondReply.id);

    // Flipping back makes the first reply current again, and shows it.
    const patch = nextPatch(page);
    await again.getByRole('button', { name: 'Previous version' }).click();
    expect((await patch).postDataJSON()).toEqual({ currentMessageId: firstReply.id });
    const first = assistantReply(page, 'completed', 'reply to: Tell me a joke');
    await first.locator('.versions', { hasText: '1 / 2' }).waitFor();
    expect(await shown(page)).toEqual(['Tell me a joke', 'reply to: Tell me a joke']);
    expect((await storedChat(chatId)).currentMessageId).toBe(firstReply.id);
    // The keyboard stays on the versions: the way back, now that there is none further.
    expect(await first.locator('.versions__step:focus').getAttribute('aria-label')).toBe('Next version');
    await screenshot(page, '14-flipped-back');
    expect(pageErrors).toEqual([]);
  });

  it('should follow the regeneration of an earlier reply after a reload, in place of what followed it', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = (req, call) => (call === 3 ? heldReply(rest.promise, 'Another ', 'take.') : echoReply(req));
    const page = await start({ llm });
    await startChat(page);
    await say(page, 'one', 1);
    await say(page, 'two', 2);
    await assistantReply(page, 'completed', 'reply to: one').getByRole('button', { name: 'Regenerate' }).click();
    await assistantReply(page, 'streaming', 'Another').waitFor();
    expect(await shown(page)).toEqual(['one', 'Another ']);

    // Reloaded, the page shows the reply being written where it will be, and follows it.
    await page.reload();
    await assistantReply(page, 'streaming', 'Another').waitFor();
    expect(await shown(page)).toEqual(['one', 'Another ']);
    expect(await page.getByRole('button', { name: 'Stop' }).isEnabled()).toBe(true);
    rest.resolve();
    await assistantReply(page, 'completed', 'Another take.').locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await shown(page)).toEqual(contents(await stored(openChatId(page))));
    expect(await shown(page)).toEqual(['one', 'Another take.']);
    expect(llm.calls).toHaveLength(3);
    expect(pageErrors).toEqual([]);
  });

  it('should offer Regenerate only on replies that answer the message before them, as imported chats may not', async () => {
    const page = await start({ llm: new RecordingLlmProvider() });
    const picking = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Import…' }).click();
    const greetingFirst = {
      title: 'Greeting first',
      messages: [
        { role: 'assistant', content: 'Hi! How can I help?' },
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: 'Sunny.' },
        { role: 'assistant', content: 'And warm.' },
      ],
    };
    await (await picking).setFiles(jsonFile('greeting.json', greetingFirst));
    await assistantReply(page, 'completed', 'And warm.').waitFor();

    const regenerates = page.locator('#messages .message').getByRole('button', { name: 'Regenerate' });
    expect(await regenerates.count()).toBe(1);
    await assistantReply(page, 'completed', 'Sunny.').getByRole('button', { name: 'Regenerate' }).click();
    const again = assistantReply(page, 'completed', 'reply to: Weather?');
    await again.locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await shown(page)).toEqual(['Hi! How can I help?', 'Weather?', 'reply to: Weather?']);
    expect(await again.getByRole('button', { name: 'Regenerate' }).count()).toBe(1);
    expect(pageErrors).toEqual([]);
  });

  it('should flip between first messages on a phone with the keyboard, showing the newest branch of each', async () => {
    const page = await start({ llm: new RecordingLlmProvider(), viewport: { width: 390, height: 844 } });
    await startChat(page);
    await say(page, 'one', 1);
    await say(page, 'two', 2);
    await userMessage(page, 'one').getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Edit message').fill('uno');
    await page.getByLabel('Edit message').press('Enter');
    await assistantReply(page, 'completed', 'reply to: uno').waitFor();
    const uno = userMessage(page, 'uno');
    await uno.locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await shown(page)).toEqual(['uno', 'reply to: uno']);
    await screenshot(page, '15-phone-versions');

    const chatId = openChatId(page);
    const roots = (await stored(chatId, '?branch=all')).filter((m) => m.parentId === null);
    expect(contents(roots)).toEqual(['one', 'uno']);

    // The first root, continued by the server to its newest descendant.
    await uno.getByRole('button', { name: 'Previous version' }).focus();
    let patch = nextPatch(page);
    await page.keyboard.press('Enter');
    expect((await patch).postDataJSON()).toEqual({ currentMessageId: roots[0].id });
    const one = userMessage(page, 'one');
    await one.locator('.versions', { hasText: '1 / 2' }).waitFor();
    expect(await shown(page)).toEqual(['one', 'reply to: one', 'two', 'reply to: two']);
    const branch = await stored(chatId);
    expect((await storedChat(chatId)).currentMessageId).toBe(branch[3].id);
    expect(contents(branch)).toEqual(await shown(page));
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await screenshot(page, '16-phone-flipped');

    // The keyboard is on "Next version" now: Enter goes back.
    patch = nextPatch(page);
    await page.keyboard.press('Enter');
    expect((await patch).postDataJSON()).toEqual({ currentMessageId: roots[1].id });
    await uno.locator('.versions', { hasText: '2 / 2' }).waitFor();
    expect(await shown(page)).toEqual(['uno', 'reply to: uno']);
    expect(pageErrors).toEqual([]);
  });

  it('should start a chat when a first message is typed with no chat selected', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = () => heldReply(rest.promise, 'Hello ', 'there.');
    const page = await start({ llm });
    await page.getByText('Provider: recording').waitFor();
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(await text(page.locator('#messages-empty'))).toBe(
      'Type a message to start a chat, or pick one from the list.',
    );

    // The system prompt typed in the sidebar counts, as for New chat.
    await page.getByLabel('System prompt').fill('Be brief.');
    await messageInput(page).fill('Hi, this is my first message');
    await screenshot(page, '17-typing-right-away');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Hello').waitFor();
    await page.locator('#chat-list [aria-current="true"]').waitFor();
    rest.resolve();
    await assistantReply(page, 'completed', 'Hello there.').waitFor();
    await page.locator('#chat-list [aria-current="true"]', { hasText: 'Hi, this is my first message' }).waitFor();
    await screenshot(page, '18-chat-started');

    const chats = (await http().get('/chats').expect(200)).body as { data: ChatDto[] };
    expect(chats.data).toEqual([
      expect.objectContaining({ id: openChatId(page), systemPrompt: 'Be brief.', messageCount: 2 }),
    ]);
    expect(contents(await stored(openChatId(page)))).toEqual(['Hi, this is my first message', 'Hello there.']);
    expect(llm.calls).toHaveLength(1);
    expect(await page.getByLabel('System prompt').inputValue()).toBe('');
    expect(pageErrors).toEqual([]);
  });

  it('should list each chat once when the open chat was answered before its page of the list was read', async () => {
    const ids: string[] = [];
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async () => {
        for (let n = 1; n <= 21; n += 1) {
          const created = await http()
            .post('/chats')
            .send({ title: `Chat ${n}` })
            .expect(201);
          ids.push((created.body as ChatDto).id);
        }
      },
    });
    // The oldest chat, opened from the address as the page loads: it is on the list's second page,
    // not read yet. (An address replaced fires no hashchange, which would open it before the load.)
    await page.evaluate((id) => history.replaceState(null, '', `#${id}`), ids[0]);
    await page.reload();
    await page.locator('#chat-title', { hasText: 'Chat 1' }).waitFor();
    await say(page, 'Hello', 1);
    await page.locator('#chat-list [aria-current="true"]', { hasText: '2 messages' }).waitFor();

    await page.getByRole('button', { name: 'More chats' }).click();
    await page.getByRole('button', { name: 'More chats' }).waitFor({ state: 'hidden' });
    const listed = await page
      .locator('#chat-list button[data-chat-id]')
      .evaluateAll((buttons) => buttons.map((button) => (button as unknown as PageElement).dataset.chatId));
    const chats = (await http().get('/chats?limit=100').expect(200)).body as { data: ChatDto[] };
    expect(listed).toEqual(chats.data.map((chat) => chat.id));
    expect(await page.locator('#chat-list [aria-current="true"]').count()).toBe(1);
    expect(pageErrors).toEqual([]);
  });

  it('should show the chat picked last when the one picked before it answers later', async () => {
    const chatIds: Record<string, string> = {};
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async (page) => {
        for (const title of ['Slow chat', 'Quick chat']) {
          const chat = (await http().post('/chats').send({ title }).expect(201)).body as ChatDto;
          await http()
            .post(`/chats/${chat.id}/messages`)
            .send({ content: `Hello from ${title}` })
            .expect(201);
          chatIds[title] = chat.id;
        }
        // Notes each URL the page fetches, and each response body it has read: the page goes on
        // from a body it read in the same turn of its event loop, before the test looks again.
        await page.addInitScript({
          content: `
            window.fetched = []; window.read = [];
            const fetch = window.fetch, text = Response.prototype.text;
            window.fetch = (input, init) => (window.fetched.push(String(input)), fetch(input, init));
            Response.prototype.text = function () {
              return text.call(this).then((body) => (window.read.push(new URL(this.url).pathname), body));
            };`,
        });
      },
    });
    const slow = `/chats/${chatIds['Slow chat']}`;
    const answer = deferred();
    await page.route(`${baseUrl}${slow}`, async (route) => {
      await answer.promise;
      await route.continue();
    });

    await page.locator(`#chat-list button[data-chat-id="${chatIds['Slow chat']}"]`).click();
    await page.locator(`#chat-list button[data-chat-id="${chatIds['Quick chat']}"]`).click();
    await assistantReply(page, 'completed', 'reply to: Hello from Quick chat').waitFor();
    answer.resolve();
    await page.waitForFunction((path) => (globalThis as unknown as { read: string[] }).read.includes(path), slow);

    // The slow chat's late answer is dropped: nothing of it is read further, or shown.
    const fetched = await page.evaluate(() => (globalThis as unknown as { fetched: string[] }).fetched);
    expect(fetched.filter((url) => url.startsWith(`${slow}/`))).toEqual([]);
    expect(await text(page.locator('#chat-title'))).toBe('Quick chat');
    expect(await shown(page)).toEqual(['Hello from Quick chat', 'reply to: Hello from Quick chat']);
    expect(openChatId(page)).toBe(chatIds['Quick chat']);
    expect(await text(page.locator('#chat-list [aria-current="true"] .chat-item__title'))).toBe('Quick chat');
    expect(pageErrors).toEqual([]);
  });

  it('should give a first message back, unsent, when a chat is picked while its new chat is made', async () => {
    let pickedId = '';
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async () => {
        pickedId = await createdChatId('Picked');
      },
    });
    await page.locator(`#chat-list button[data-chat-id="${pickedId}"]`).waitFor();
    const made = deferred();
    await page.route(`${baseUrl}/chats`, async (route) => {
      if (route.request().method() === 'POST') await made.promise;
      await route.continue();
    });
    const creating = page.waitForRequest((req) => req.method() === 'POST' && req.url() === `${baseUrl}/chats`);
    await messageInput(page).fill('Hello, new chat');
    await messageInput(page).press('Enter');
    await creating;

    await page.locator(`#chat-list button[data-chat-id="${pickedId}"]`).click();
    await page.locator('#chat-title', { hasText: 'Picked' }).waitFor();
    made.resolve();
    await page.locator('#chat-list li', { hasText: 'Untitled chat' }).waitFor();
    await until(async () => (await messageInput(page).inputValue()) === 'Hello, new chat', 'the text given back');

    expect(openChatId(page)).toBe(pickedId);
    expect(await text(page.locator('#chat-title'))).toBe('Picked');
    expect(await shown(page)).toEqual([]);
    expect(await stored(pickedId)).toEqual([]);
    expect(await page.getByRole('button', { name: 'Send' }).isEnabled()).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('should search every chat and open the chat of a hit, scrolled to the hit', async () => {
    // A long chat, there before the page loads: the page opens a chat at its end, far below the hit.
    const packing = Array.from({ length: 30 }, (_, n) => ({
      role: n % 2 === 0 ? 'user' : 'assistant',
      content: n === 2 ? 'Do I need my passport for <b>Porto</b>?' : `Packing step ${n + 1}: more socks.`,
    }));
    let packingId = '';
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async () => {
        const imported = await http().post('/chats/import').send({ title: 'Packing list', messages: packing });
        packingId = (imported.body as ChatDto).id;
      },
    });
    const patches: string[] = [];
    page.on('request', (req) => req.method() === 'PATCH' && patches.push(req.url()));
    await startChat(page);
    await say(page, 'Where should I eat tonight?', 1);

    await searchFor(page, 'passport');
    const hit = page.locator('#search-hits .search-hit');
    await hit.waitFor();
    const [expected] = (await http().get('/search?q=passport').expect(200)).body.data as SearchHitDto[];
    expect(await hit.count()).toBe(1);
    expect(await text(hit.locator('.search-hit__title'))).toBe('Packing list');
    // The snippet shows as text, with each match of the service's in a <mark>.
    expect(await text(hit.locator('.search-hit__snippet'))).toBe('Do I need my passport for <b>Porto</b>?');
    expect(await text(hit.locator('.search-hit__snippet'))).toBe(expected.snippet.text);
    expect(await hit.locator('mark').allTextContents()).toEqual(['passport']);
    expect(await page.locator('#search-hits b').count()).toBe(0);
    await screenshot(page, '21-search-hits');

    await hit.click();
    const opened = page.locator('#messages .message--hit');
    await opened.waitFor();
    expect(openChatId(page)).toBe(packingId);
    expect(await opened.getAttribute('data-message-id')).toBe(expected.message.id);
    expect(await text(opened.locator('.message__content'))).toBe('Do I need my passport for <b>Porto</b>?');
    expect(await text(page.locator('#chat-title'))).toBe('Packing list');
    await page.locator('#chat-list [aria-current="true"]', { hasText: 'Packing list' }).waitFor();
    expect(await shown(page)).toEqual(packing.map((m) => m.content));
    // Scrolled into the list's view, away from its end; the keyboard is on it.
    const list = (await page.locator('#messages').boundingBox())!;
    const box = (await opened.boundingBox())!;
    expect(box.y).toBeGreaterThanOrEqual(list.y);
    expect(box.y + box.height).toBeLessThanOrEqual(list.y + list.height);
    const last = (await page.locator('#messages .message').last().boundingBox())!;
    expect(last.y).toBeGreaterThan(list.y + list.height);
    expect(await page.evaluate(() => document.activeElement?.dataset.messageId)).toBe(expected.message.id);
    // On the current branch already: nothing switched.
    expect(patches).toEqual([]);
    await screenshot(page, '22-search-hit-opened');
    expect(pageErrors).toEqual([]);
  });

  it('should open a hit on another branch with that branch, and say when nothing matches or q is refused', async () => {
    let lisbonId = '';
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async () => {
        lisbonId = ((await http().post('/chats/import').send(branchedDocument()).expect(201)).body as ChatDto).id;
      },
    });
    await page.locator('#chat-list button', { hasText: 'Lisbon' }).click();
    await assistantReply(page, 'completed', 'Cascais is a train ride away.').waitFor();

    await searchFor(page, 'museum');
    const hit = page.locator('#search-hits .search-hit', { hasText: 'Add a museum' });
    const museum = (await stored(lisbonId, '?branch=all')).find((m) => m.content === 'Add a museum')!;
    const patch = nextPatch(page);
    await hit.click();
    // The hit's branch becomes current (continued by the service to its newest message), and shows.
    expect((await patch).postDataJSON()).toEqual({ currentMessageId: museum.id });
    await page.locator('#messages .message--hit', { hasText: 'Add a museum' }).waitFor();
    expect(await shown(page)).toEqual(['Plan a day in Lisbon', 'Belém, then Alfama.', 'Add a museum', '']);
    expect(await text(userMessage(page, 'Add a museum').locator('.versions__count'))).toBe('1 / 2');
    expect(contents(await stored(lisbonId))).toEqual(await shown(page));

    await searchFor(page, 'zanzibar');
    await page.locator('#search-status', { hasText: 'No messages match “zanzibar”.' }).waitFor();
    expect(await page.locator('#search-hits li').count()).toBe(0);

    // The service's limit on q, shown as its problem says.
    const long = 'lisbon '.repeat(30);
    const refusal = (await http().get('/search').query({ q: long.trim() }).expect(422)).body;
    await searchFor(page, long);
    await page.locator('#notice', { hasText: refusal.detail }).waitFor();
    expect(await page.locator('#search-results').isHidden()).toBe(true);

    // Escape clears the search.
    await searchFor(page, 'beach');
    await page.locator('#search-hits .search-hit', { hasText: 'Add a beach' }).waitFor();
    await page.getByLabel('Search messages').press('Escape');
    await page.locator('#search-results').waitFor({ state: 'hidden' });
    expect(await page.getByLabel('Search messages').inputValue()).toBe('');
    expect(pageErrors.filter((error) => !/status of 422/.test(error))).toEqual([]);
  });

  it('should export the open chat as JSON and Markdown files that hold what the service exports', async () => {
    const page = await start({ llm: new RecordingLlmProvider() });
    await startChat(page, 'Be brief.');
    await say(page, 'Plan a day in Lisbon', 1);
    await say(page, 'Add a museum', 2);
    await page.locator('#chat-list [aria-current="true"]', { hasText: 'Plan a day in Lisbon' }).waitFor();
    const chatId = openChatId(page);
    expect((await storedChat(chatId)).title).toBe('Plan a day in Lisbon');

    const json = await download(page, 'Export JSON');
    expect(json.name).toBe('Plan a day in Lisbon.json');
    const exported = (await http().get(`/chats/${chatId}/export`).expect(200)).body as ExportDocumentDto;
    expect(JSON.parse(json.text)).toEqual(exported);
    expect(exported.chat).toMatchObject({ id: chatId, systemPrompt: 'Be brief.' });
    expect(contents(exported.messages as MessageDto[])).toEqual(await shown(page));

    const markdown = await download(page, 'Export Markdown');
    expect(markdown.name).toBe('Plan a day in Lisbon.md');
    expect(markdown.text).toBe((await http().get(`/chats/${chatId}/export?format=markdown`).expect(200)).text);
    expect(markdown.text).toBe(
      '# Plan a day in Lisbon\n\n## User\n\n> Plan a day in Lisbon\n\n## Assistant\n\n> reply to: Plan a day in Lisbon\n' +
        '\n## User\n\n> Add a museum\n\n## Assistant\n\n> reply to: Add a museum\n',
    );

    // A title is a file name without what separates or quotes paths; with no title, the id is.
    await http().patch(`/chats/${chatId}`).send({ title: 'Lisbon / Porto: "2 days"?' }).expect(200);
    await page.locator(`#chat-list button[data-chat-id="${chatId}"]`).click();
    await page.locator('#chat-title', { hasText: 'Lisbon / Porto' }).waitFor();
    expect((await download(page, 'Export JSON')).name).toBe('Lisbon Porto 2 days.json');
    await startChat(page);
    const untitled = await download(page, 'Export Markdown');
    expect(untitled).toEqual({ name: `${openChatId(page)}.md`, text: '# Untitled chat\n' });
    expect(pageErrors).toEqual([]);
  });

  it('should import a chat from a file and open it, and show what is wrong with a bad file', async () => {
    const page = await start();
    await page.getByText('No chats yet.').waitFor();
    const lisbon = branchedDocument();
    const picking = page.waitForEvent('filechooser');
    await page.getByRole('button', { name: 'Import…' }).click();
    await (await picking).setFiles(jsonFile('lisbon.json', lisbon));

    // Opened at its current branch, and selected in the list, with the keyboard on the composer.
    await page.locator('#chat-list [aria-current="true"]', { hasText: 'Lisbon' }).waitFor();
    await assistantReply(page, 'completed', 'Cascais is a train ride away.').waitFor();
    expect(await shown(page)).toEqual([
      'Plan a day in Lisbon',
      'Belém, then Alfama.',
      'Add a beach',
      'Cascais is a train ride away.',
    ]);
    expect(await text(page.locator('#chat-system'))).toBe('System prompt: Be brief.');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('message-input');
    const chatId = openChatId(page);
    expect(chatId).not.toBe(lisbon.chat.id);
    expect(contents(await stored(chatId, '?branch=all'))).toEqual(lisbon.messages.map((m) => m.content));
    await screenshot(page, '23-imported');

    // Refused: the problem's detail names the first bad field; nothing is stored, the chat stays open.
    const bad = {
      title: 'Bad',
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'robot', content: 'Beep' },
      ],
    };
    const refusal = (await http().post('/chats/import').send(bad).expect(422)).body;
    expect(refusal.detail).toMatch(/^messages\[1\]\.role: /);
    await page.locator('#import-file').setInputFiles(jsonFile('bad.json', bad));
    await page.locator('#notice', { hasText: refusal.detail }).waitFor();
    await screenshot(page, '24-import-refused');
    // Not JSON at all: the service's 400 says so.
    const notJson = '{"messages": [';
    const malformed = (
      await http().post('/chats/import').set('Content-Type', 'application/json').send(notJson).expect(400)
    ).body;
    await page.locator('#import-file').setInputFiles({ ...jsonFile('notes.json', null), buffer: Buffer.from(notJson) });
    await page.locator('#notice', { hasText: `Bad Request: ${malformed.detail}` }).waitFor();

    expect(openChatId(page)).toBe(chatId);
    expect(await shown(page)).toHaveLength(4);
    const chats = (await http().get('/chats').expect(200)).body as { data: ChatDto[] };
    expect(chats.data.map((chat) => chat.id)).toEqual([chatId]);
    expect(pageErrors.filter((error) => !/status of 4(00|22)/.test(error))).toEqual([]);
  });

  it('should rename the open chat from its title on a phone, showing the service’s word on a bad title', async () => {
    const page = await start({ llm: new RecordingLlmProvider(), viewport: { width: 390, height: 844 } });
    const patches: string[] = [];
    page.on('request', (req) => req.method() === 'PATCH' && patches.push(req.postData() ?? ''));
    await startChat(page);
    await say(page, 'Plan a day in Lisbon', 1);
    const chatId = openChatId(page);
    const listed = page.locator(`#chat-list button[data-chat-id="${chatId}"] .chat-item__title`);
    await page.locator('#chat-title', { hasText: 'Plan a day in Lisbon' }).waitFor();
    const field = page.getByLabel('Chat title');

    // Escape leaves the title as it was, with the keyboard back on Rename.
    await page.getByRole('button', { name: 'Rename' }).click();
    expect(await field.inputValue()).toBe('Plan a day in Lisbon');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('rename-input');
    await page.keyboard.type('Not this');
    await page.keyboard.press('Escape');
    await field.waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('rename-chat');
    expect(await text(page.locator('#chat-title'))).toBe('Plan a day in Lisbon');
    expect(patches).toEqual([]);

    // Blank, or longer than the service takes: its problem shows, and the field stays to fix it.
    for (const title of ['   ', 'x'.repeat(201)]) {
      const refusal = (await http().patch(`/chats/${chatId}`).send({ title }).expect(422)).body as { detail: string };
      await page.keyboard.press('Enter'); // Rename
      await field.fill(title);
      await field.press('Enter');
      await page.locator('#notice', { hasText: refusal.detail }).waitFor();
      expect(await field.isVisible()).toBe(true);
      await screenshot(page, '26-phone-rename-refused');
      await field.press('Escape');
    }
    expect((await storedChat(chatId)).title).toBe('Plan a day in Lisbon');

    const renamed = 'Lisbon, <b>3 days</b> & more';
    await page.keyboard.press('Enter');
    await field.fill(renamed);
    await field.press('Enter');
    await page.locator('#chat-title', { hasText: renamed }).waitFor();
    expect(await text(listed)).toBe(renamed);
    expect((await storedChat(chatId)).title).toBe(renamed);
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('rename-chat');
    expect(await page.locator('body b').count()).toBe(0);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

    // Reloaded, the page shows the title the service keeps.
    await page.reload();
    await page.locator('#chat-title', { hasText: renamed }).waitFor();
    expect(await text(listed)).toBe(renamed);
    expect(pageErrors.filter((error) => !/status of 422/.test(error))).toEqual([]);
  });

  it('should delete the open chat once asked to confirm, and stop following the reply it was writing', async () => {
    const llm = new RecordingLlmProvider();
    llm.respond = (req) =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Partial answer' };
        await untilAborted(req);
      })();
    let keptId = '';
    const page = await start({
      llm,
      beforeLoad: async () => {
        keptId = await createdChatId('Keep me');
      },
    });
    await startChat(page);
    await messageInput(page).fill('Write me a long essay');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Partial answer').waitFor();
    const chatId = openChatId(page);
    const listed = page.locator(`#chat-list button[data-chat-id="${chatId}"]`);
    // The service's 204 reaches the page only once the reply's stream has ended (the service ends
    // it when it stops the turn), or once the page has let it go: the page must not read its end.
    const streamLetGo = deferred();
    const letGo = (req: Request) => req.method() === 'POST' && req.url().endsWith('/messages') && streamLetGo.resolve();
    page.on('requestfinished', letGo).on('requestfailed', letGo);
    await page.route(`${baseUrl}/chats/${chatId}`, async (route) => {
      if (route.request().method() !== 'DELETE') return route.continue();
      const response = await route.fetch();
      await streamLetGo.promise;
      await route.fulfill({ response });
    });
    const afterDelete: string[] = [];
    let deleted = false;
    page.on('request', (req) => {
      if (deleted && req.url().includes(chatId)) afterDelete.push(`${req.method()} ${req.url()}`);
      if (req.method() === 'DELETE') deleted = true;
    });

    // Asked first, with the keyboard on keeping the chat: Escape keeps it, and the reply goes on.
    await page.getByRole('button', { name: 'Delete…' }).click();
    const question = page.locator('#delete-confirm');
    expect(await text(question.locator('p'))).toBe(
      'Delete “Untitled chat” and all its messages? This cannot be undone.',
    );
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('delete-no');
    await screenshot(page, '27-delete-asked');
    await page.keyboard.press('Escape');
    await question.waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('delete-chat');
    expect(deleted).toBe(false);
    expect(await assistantReply(page, 'streaming').count()).toBe(1);
    expect(llm.calls[0].request.signal?.aborted).toBe(false);

    await page.keyboard.press('Enter');
    await page.getByRole('button', { name: 'Delete chat', exact: true }).click();
    await listed.waitFor({ state: 'detached' });
    // The page shows no chat, and its address names none; the service stopped the turn.
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(await shown(page)).toEqual([]);
    expect(page.url()).toBe(`${baseUrl}/`);
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(await page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('message-input');
    expect(await page.locator('#chat-list button[data-chat-id]').count()).toBe(1);
    await http().get(`/chats/${chatId}`).expect(404);
    expect(llm.calls[0].request.signal?.aborted).toBe(true);
    await screenshot(page, '28-deleted');

    // Reloaded, the tab opens nothing it had open: the chat left the address and the tab both.
    await page.reload();
    await page.locator(`#chat-list button[data-chat-id="${keptId}"]`).waitFor();
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(await page.locator('#notice').isHidden()).toBe(true);
    // Nothing asked after the chat once it was deleted: no resume of its reply, no refresh.
    expect(afterDelete).toEqual([]);
    await http().get(`/chats/${keptId}`).expect(200);
    expect(pageErrors).toEqual([]);
  });

  it('should give back the text of a message sent while the chat’s delete was on its way', async () => {
    const page = await start({ llm: new RecordingLlmProvider() });
    await startChat(page);
    const chatId = openChatId(page);
    const deleting = deferred();
    await page.route(`${baseUrl}/chats/${chatId}`, async (route) => {
      if (route.request().method() === 'DELETE') await deleting.promise;
      await route.continue();
    });
    // The message reaches the service only after the delete has: the page has dropped it by then.
    const sending = deferred();
    await page.route(`${baseUrl}/chats/${chatId}/messages`, async (route) => {
      if (route.request().method() === 'POST') await sending.promise;
      await route.continue().catch(() => undefined); // the page let it go
    });
    const deleteSent = page.waitForRequest((req) => req.method() === 'DELETE');
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Delete chat', exact: true }).click();
    await deleteSent;
    const messageSent = page.waitForRequest((req) => req.method() === 'POST' && req.url().endsWith('/messages'));
    await messageInput(page).fill('Keep this text');
    await messageInput(page).press('Enter');
    await messageSent;
    expect(await messageInput(page).inputValue()).toBe('');

    deleting.resolve();
    await page.locator(`#chat-list button[data-chat-id="${chatId}"]`).waitFor({ state: 'detached' });
    expect(await messageInput(page).inputValue()).toBe('Keep this text');
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(await shown(page)).toEqual([]);
    expect(await page.getByRole('button', { name: 'Send' }).isEnabled()).toBe(true);
    sending.resolve();
    await http().get(`/chats/${chatId}`).expect(404);
    expect(pageErrors).toEqual([]);
  });

  it('should keep following the reply of a chat whose delete the service refuses', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = () => heldReply(rest.promise, 'Still ', 'here.');
    const page = await start({ llm });
    await startChat(page);
    await messageInput(page).fill('Are you there?');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Still').waitFor();
    const chatId = openChatId(page);
    const refusal = { type: 'about:blank', title: 'Too Many Requests', status: 429, detail: 'Slow down.' };
    await page.route(`${baseUrl}/chats/${chatId}`, (route) =>
      route.request().method() === 'DELETE'
        ? route.fulfill({
            status: 429,
            headers: { 'Retry-After': '7' },
            contentType: 'application/problem+json',
            body: JSON.stringify(refusal),
          })
        : route.continue(),
    );

    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Delete chat', exact: true }).click();
    await page.locator('#notice', { hasText: 'Too Many Requests: Slow down. Try again in 7 s.' }).waitFor();
    // The chat shows again, and the page reads its reply on from where it left it.
    await assistantReply(page, 'streaming', 'Still').waitFor();
    expect(openChatId(page)).toBe(chatId);
    expect(await page.locator(`#chat-list button[data-chat-id="${chatId}"]`).count()).toBe(1);
    rest.resolve();
    await assistantReply(page, 'completed', 'Still here.').waitFor();
    expect(await shown(page)).toEqual(contents(await stored(chatId)));
    expect(await shown(page)).toEqual(['Are you there?', 'Still here.']);
    expect(pageErrors.filter((error) => !/status of 429/.test(error))).toEqual([]);
  });

  it('should follow the open chat’s reply on when the chat picked instead was deleted elsewhere', async () => {
    const llm = new RecordingLlmProvider();
    const rest = deferred();
    llm.respond = () => heldReply(rest.promise, 'Still ', 'here.');
    let goneId = '';
    const page = await start({
      llm,
      beforeLoad: async () => {
        goneId = await createdChatId('Gone trip');
      },
    });
    await startChat(page);
    await messageInput(page).fill('Are you there?');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Still').waitFor();
    const chatId = openChatId(page);

    // Picked while the reply streams, the other chat turns out deleted: the open chat stays, and so does its reply.
    await http().delete(`/chats/${goneId}`).expect(204);
    await page.locator(`#chat-list button[data-chat-id="${goneId}"]`).click();
    await page.locator('#notice', { hasText: 'The chat “Gone trip” is gone: deleted elsewhere.' }).waitFor();
    expect(openChatId(page)).toBe(chatId);
    expect(await page.getByRole('button', { name: 'Stop' }).isEnabled()).toBe(true);
    expect(await assistantReply(page, 'streaming', 'Still').count()).toBe(1);
    rest.resolve();
    await assistantReply(page, 'completed', 'Still here.').waitFor();
    expect(await shown(page)).toEqual(['Are you there?', 'Still here.']);
    expect(await shown(page)).toEqual(contents(await stored(chatId)));
    expect(await page.locator('#chat-list li').count()).toBe(1);
    expect(pageErrors.filter((error) => !/status of 404/.test(error))).toEqual([]);
  });

  /** The page with two chats made before it loaded, the first of them open. */
  const startOnFirstOfTwoChats = async () => {
    let firstId = '';
    let secondId = '';
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async () => {
        firstId = await createdChatId('First trip');
        secondId = await createdChatId('Second trip');
      },
    });
    await page.locator(`#chat-list button[data-chat-id="${firstId}"]`).click();
    await page.locator('#chat-title', { hasText: 'First trip' }).waitFor();
    return { page, firstId, secondId };
  };

  it('should open the chat an address typed into the tab names, as picking it from the list does', async () => {
    const { page, firstId, secondId } = await startOnFirstOfTwoChats();
    await say(page, 'Plan a day in Lisbon', 1);

    // Only the fragment changes, so the page is not loaded again.
    await page.evaluate((chatId) => (location.hash = chatId), secondId);
    await page.locator('#chat-title', { hasText: 'Second trip' }).waitFor();
    expect(openChatId(page)).toBe(secondId);
    expect(await shown(page)).toEqual([]);
    expect(await page.locator('#chat-list [aria-current="true"]').getAttribute('data-chat-id')).toBe(secondId);

    await page.evaluate((chatId) => (location.hash = chatId), firstId);
    await page.locator('#chat-title', { hasText: 'First trip' }).waitFor();
    await page.locator('#messages .message--assistant[data-status="completed"]').waitFor();
    expect(await shown(page)).toEqual(contents(await stored(firstId)));
    expect(pageErrors).toEqual([]);
  });

  it('should pass over a malformed address, typed into the tab or loaded', async () => {
    const { page, secondId } = await startOnFirstOfTwoChats();

    // Not a percent-encoding decodeURIComponent can read; the change after it shows both were handled.
    await page.evaluate(() => (location.hash = '%E0%A4%A'));
    await page.evaluate((chatId) => (location.hash = chatId), secondId);
    await page.locator('#chat-title', { hasText: 'Second trip' }).waitFor();
    expect(pageErrors).toEqual([]);

    // Loaded with it, the page opens the chat the tab had open.
    await page.evaluate(() => (location.hash = '%E0%A4%A'));
    await page.reload();
    await page.locator('#chat-title', { hasText: 'Second trip' }).waitFor();
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('should take a chat deleted elsewhere off the page, say so, and keep the text typed for it', async () => {
    let otherId = '';
    const page = await start({
      llm: new RecordingLlmProvider(),
      beforeLoad: async () => {
        otherId = await createdChatId('Other trip');
      },
    });
    await startChat(page);
    await say(page, 'Plan a day in Lisbon', 1);
    await page.locator('#chat-title', { hasText: 'Plan a day in Lisbon' }).waitFor();
    const chatId = openChatId(page);
    const notice = page.locator('#notice');

    // Deleted by another client; the page learns it from the 404 of the next message.
    await http().delete(`/chats/${chatId}`).expect(204);
    const refused = page.waitForResponse((res) => res.url().endsWith(`/chats/${chatId}/messages`));
    await messageInput(page).fill('And the evening?');
    await messageInput(page).press('Enter');
    expect((await refused).status()).toBe(404);
    await page.locator(`#chat-list button[data-chat-id="${chatId}"]`).waitFor({ state: 'detached' });
    await notice.filter({ hasText: 'The chat “Plan a day in Lisbon” is gone: deleted elsewhere.' }).waitFor();
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(await shown(page)).toEqual([]);
    expect(page.url()).toBe(`${baseUrl}/`);
    expect(await messageInput(page).inputValue()).toBe('And the evening?');
    expect(await page.getByRole('button', { name: 'Send' }).isEnabled()).toBe(true);
    await screenshot(page, '29-deleted-elsewhere');

    // A chat of the list deleted elsewhere leaves it when picked.
    await http().delete(`/chats/${otherId}`).expect(204);
    await page.locator(`#chat-list button[data-chat-id="${otherId}"]`).click();
    await notice.filter({ hasText: 'The chat “Other trip” is gone: deleted elsewhere.' }).waitFor();
    expect(await page.locator('#chat-list li').count()).toBe(0);
    await page.getByText('No chats yet.').waitFor();

    // So does a chat the address names, typed into the tab (only the fragment changes: no load) …
    await page.goto(`${baseUrl}/#${chatId}`);
    await notice.filter({ hasText: 'That chat is gone: deleted elsewhere.' }).waitFor();
    expect(page.url()).toBe(`${baseUrl}/`);
    // … or loaded (an address replaced, as the page's own are, fires no hashchange).
    await page.evaluate((id) => history.replaceState(null, '', `#${id}`), chatId);
    await page.reload();
    await notice.filter({ hasText: 'That chat is gone: deleted elsewhere.' }).waitFor();
    expect(page.url()).toBe(`${baseUrl}/`);
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(pageErrors.filter((error) => !/status of 404/.test(error))).toEqual([]);
  });

  it('should leave a chat deleted elsewhere while its reply streams, and say so', async () => {
    const llm = new RecordingLlmProvider();
    llm.respond = (req) =>
      (async function* (): AsyncGenerator<LlmStreamPart> {
        yield { type: 'delta', content: 'Partial answer' };
        await untilAborted(req);
      })();
    const page = await start({ llm });
    await startChat(page);
    await messageInput(page).fill('Write me a long essay');
    await messageInput(page).press('Enter');
    await assistantReply(page, 'streaming', 'Partial answer').waitFor();
    const chatId = openChatId(page);

    // The service stops the turn; its stream ends with the chat's 404, which the page reads as such.
    await http().delete(`/chats/${chatId}`).expect(204);
    await page.locator('#notice', { hasText: 'The chat “Untitled chat” is gone: deleted elsewhere.' }).waitFor();
    expect(await page.locator('#chat-list li').count()).toBe(0);
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(await shown(page)).toEqual([]);
    expect(page.url()).toBe(`${baseUrl}/`);
    expect(await page.getByRole('button', { name: 'Stop' }).isDisabled()).toBe(true);
    expect(llm.calls[0].request.signal?.aborted).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('should not say a chat was deleted when it is another API key’s, nor when this tab deleted it', async () => {
    const acme = 'acme-key-0123456789abcdef';
    const globex = 'globex-key-0123456789abcdef';
    const page = await start({
      llm: new RecordingLlmProvider(),
      env: { API_KEYS: `acme:${acme},globex:${globex}` },
      // Notes each error body the page has read: the page goes on from it in the same turn of its event loop.
      beforeLoad: (page) =>
        page.addInitScript({
          content: `
            window.refused = [];
            const json = Response.prototype.json;
            Response.prototype.json = function () {
              return json.call(this).finally(() => window.refused.push(this.status + ' ' + this.url));
            };`,
        }),
    });
    const refusedRead = (status: number, url: string) =>
      page.waitForFunction(
        (seen) => (globalThis as unknown as { refused: string[] }).refused.includes(seen),
        `${status} ${url}`,
      );
    await page.locator('#key-panel[open]').waitFor();
    await page.getByLabel('API key').fill(acme);
    await page.getByLabel('API key').press('Enter');
    await page.getByText('No chats yet.').waitFor();
    await startChat(page);
    const chatId = openChatId(page);

    // Another key's page: the chat, still there, is not one of its chats.
    await page.locator('#key-summary').click();
    await page.getByLabel('API key').fill(globex);
    await page.getByLabel('API key').press('Enter');
    await page
      .locator('#notice', {
        hasText: 'The chat “Untitled chat” is gone: deleted elsewhere, or not one of this API key’s chats.',
      })
      .waitFor();
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    await http().get(`/chats/${chatId}`).set('Authorization', `Bearer ${acme}`).expect(200);

    // Back to the first key: a refresh still on its way when this tab deletes the chat gets a 404, which says nothing.
    await page.locator('#key-summary').click();
    await page.getByLabel('API key').fill(acme);
    await page.getByLabel('API key').press('Enter');
    await page.locator(`#chat-list button[data-chat-id="${chatId}"]`).click();
    await page.locator('#chat-list [aria-current="true"]').waitFor();
    const refresh = deferred();
    const refreshAsked = deferred();
    await page.route(`${baseUrl}/chats/${chatId}`, async (route) => {
      if (route.request().method() === 'GET') {
        refreshAsked.resolve();
        await refresh.promise;
      }
      await route.continue();
    });
    await say(page, 'Hello', 1);
    await refreshAsked.promise;
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('button', { name: 'Delete chat', exact: true }).click();
    await page.locator(`#chat-list button[data-chat-id="${chatId}"]`).waitFor({ state: 'detached' });
    refresh.resolve();
    await refusedRead(404, `${baseUrl}/chats/${chatId}`);
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(await text(page.locator('#chat-title'))).toBe('No chat selected');
    expect(pageErrors.filter((error) => !/status of 404/.test(error))).toEqual([]);
  });

  it('should show the seconds of Retry-After with a 429, whose detail only names the header', async () => {
    const page = await start({ env: { RATE_LIMIT: '20', RATE_LIMIT_WINDOW_MS: '600000' } });
    await page.getByText('No chats yet.').waitFor();
    // The page and this test call from the same address: the test uses up what is left of the limit.
    let refused = false;
    for (let n = 0; n < 20 && !refused; n += 1) refused = (await http().get('/chats')).status === 429;
    expect(refused).toBe(true);

    const answer = page.waitForResponse((res) => new URL(res.url()).pathname === '/search');
    await searchFor(page, 'passport');
    const response = await answer;
    expect(response.status()).toBe(429);
    const seconds = response.headers()['retry-after'];
    expect(seconds).toMatch(/^[1-9]\d*$/);
    const problem = (await response.json()) as { title: string; detail: string };
    expect(problem.detail).toMatch(/retry after the time in Retry-After\.$/);
    await page
      .locator('#notice', { hasText: `${problem.title}: ${problem.detail} Try again in ${seconds} s.` })
      .waitFor();
    await screenshot(page, '25-rate-limited');

    // A Retry-After of 0 (the window just ended) says to try again now, not in 0 s.
    await page.route(
      (url) => url.pathname === '/search',
      (route) =>
        route.fulfill({
          status: 429,
          headers: { 'Retry-After': '0' },
          contentType: 'application/problem+json',
          body: JSON.stringify({ ...problem, status: 429 }),
        }),
    );
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.locator('#notice', { hasText: `${problem.title}: ${problem.detail} Try again now.` }).waitFor();
    expect(await text(page.locator('#notice'))).not.toContain(' s.');
    expect(pageErrors.filter((error) => !/status of 429/.test(error))).toEqual([]);
  });

  it('should serve Swagger UI at /docs, whose "Try it out" creates a chat, and sends and edits with what it pre-fills', async () => {
    const page = await start();
    await page.goto(`${baseUrl}/docs`);
    const operation = page.locator('#operations-chats-ChatsController_create');
    await operation.waitFor();
    await screenshot(page, '06-docs'); // the operations, collapsed

    await operation.locator('.opblock-summary').click();
    await operation.getByRole('button', { name: 'Try it out' }).click();
    await operation.getByRole('button', { name: 'Execute' }).click();
    await operation.locator('.live-responses-table .response-col_status', { hasText: '201' }).waitFor();
    await screenshot(operation, '07-docs-try-it-out');

    const chats = (await http().get('/chats').expect(200)).body;
    expect(chats.data).toHaveLength(1);
    expect(chats.data[0]).toMatchObject({ title: 'Trip to Lisbon' });

    // A reader fills in only the ids they have, and leaves every other value as it is offered.
    const chat = chats.data[0] as ChatDto;
    const tryItOut = async (id: string, ids: Record<string, string>) => {
      const tried = page.locator(`#operations-${id}`);
      await tried.locator('.opblock-summary').click();
      await tried.getByRole('button', { name: 'Try it out' }).click();
      for (const [name, value] of Object.entries(ids)) {
        await tried.locator(`tr[data-param-name="${name}"] input`).fill(value);
      }
      await tried.getByRole('button', { name: 'Execute' }).click();
      return text(tried.locator('.live-responses-table tbody .response-col_status'));
    };
    expect(await tryItOut('messages-MessagesController_send', { chatId: chat.id })).toBe('201');
    const [question] = (await http().get(`/chats/${chat.id}/messages`).expect(200)).body.data as MessageDto[];
    expect(await tryItOut('messages-MessagesController_regenerate', { chatId: chat.id, messageId: question.id })).toBe(
      '201',
    );
    expect(await tryItOut('chats-ChatsController_update', { chatId: chat.id })).toBe('200');

    const updated = (await http().get(`/chats/${chat.id}`).expect(200)).body as ChatDto;
    expect(updated).toMatchObject({ title: 'Lisbon, 3 days in May', systemPrompt: chat.systemPrompt, messageCount: 3 });
  });
});
