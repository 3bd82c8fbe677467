// A loopback OpenAI-compatible Chat Completions server for the benchmark: every request gets a
// streamed reply after `latencyMs` (the time to the first token), its pieces `interTokenMs` apart.
// It does as little as it can, so that it measures the service and not itself.
//
// Control (from the benchmark only): POST /_bench with a JSON object of settings to change;
// with `ttftTags` set, GET /_bench/ttft answers the times to first token (ms) of the requests since
// the last change whose last message carries a tag `[ttft:<n>]`, by tag.
// Prints `listening <port>` once ready.
import { createServer } from 'node:http';

const settings = { latencyMs: 0, replyChars: 60, pieces: 12, interTokenMs: 0, ttftTags: false };
let ttft = {};
let events = buildEvents();

/** The reply's SSE events, serialized once per setting: `replyChars` characters in `pieces` chunks. */
function buildEvents() {
  const words = 'Sure thing, here is what the loopback upstream has to say about your message today. '.split(' ');
  let text = '';
  for (let i = 0; text.length < settings.replyChars; i++) text += `${words[i % words.length]} `;
  text = text.slice(0, settings.replyChars);
  const size = Math.ceil(text.length / settings.pieces);
  const chunk = (fields) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 0, model: 'bench-model', ...fields })}\n\n`;
  const pieces = [];
  for (let at = 0; at < text.length; at += size) {
    const delta =
      at === 0 ? { role: 'assistant', content: text.slice(at, at + size) } : { content: text.slice(at, at + size) };
    pieces.push(chunk({ choices: [{ index: 0, delta, finish_reason: null }] }));
  }
  const tail =
    chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) +
    chunk({
      choices: [],
      usage: { prompt_tokens: 20, completion_tokens: settings.pieces, total_tokens: 20 + settings.pieces },
    }) +
    'data: [DONE]\n\n';
  return { pieces, tail, all: pieces.join('') + tail };
}

function stream(res, startedAt, tag) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  if (tag !== undefined) ttft[tag] = Number(process.hrtime.bigint() - startedAt) / 1e6;
  if (settings.interTokenMs === 0) {
    res.end(events.all);
    return;
  }
  const { pieces, tail } = events;
  res.write(pieces[0]);
  let next = 1;
  const timer = setInterval(() => {
    if (res.destroyed) return clearInterval(timer);
    if (next < pieces.length) return void res.write(pieces[next++]);
    clearInterval(timer);
    res.end(tail);
  }, settings.interTokenMs);
}

function respond(res, startedAt, tag) {
  if (settings.latencyMs > 0) setTimeout(() => stream(res, startedAt, tag), settings.latencyMs);
  else stream(res, startedAt, tag);
}

function readJson(req, then) {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => then(body));
}

const server = createServer((req, res) => {
  const startedAt = process.hrtime.bigint();
  if (req.url === '/v1/chat/completions' && req.method === 'POST') {
    // The reply does not depend on the body. It is searched for a tag only when asked: on a full
    // context (about 41 KB) the search would add 0.04 ms of the upstream's own to a turn.
    if (!settings.ttftTags) {
      req.resume();
      req.on('end', () => respond(res, startedAt, undefined));
      return;
    }
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const at = body.lastIndexOf('[ttft:');
      respond(res, startedAt, at < 0 ? undefined : body.slice(at + 6, body.indexOf(']', at)));
    });
    return;
  }
  if (req.url === '/_bench' && req.method === 'POST') {
    return readJson(req, (body) => {
      Object.assign(settings, JSON.parse(body));
      events = buildEvents();
      ttft = {};
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(settings));
    });
  }
  if (req.url === '/_bench/ttft') {
    return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(ttft));
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
