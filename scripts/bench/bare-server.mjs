// The benchmark's ceiling: a bare node:http server that answers POST /chats/{id}/messages like the
// service does (parse the JSON body, 201 with a user message and a reply of the same shape), with
// no framework, no storage and no upstream call; after `delayMs` when set, as a baseline for a
// slow upstream. Control: POST /_bench {"delayMs": n}. Prints `listening <port>` once ready.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

const REPLY = 'Sure thing, here is what the loopback upstream has to say about your message today.';
const settings = { delayMs: 0 };

function message(chatId, seq, role, content, inReplyTo) {
  return {
    id: randomUUID(),
    chatId,
    seq,
    role,
    content,
    status: 'completed',
    inReplyTo,
    model: role === 'assistant' ? 'bench-model' : null,
    usage: role === 'assistant' ? { promptTokens: 20, completionTokens: 12 } : null,
    createdAt: new Date().toISOString(),
  };
}

const server = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    if (req.url === '/_bench') {
      Object.assign(settings, JSON.parse(body));
      return void res.writeHead(200).end();
    }
    const match = /^\/chats\/([^/]+)\/messages$/.exec(req.url ?? '');
    if (!match || req.method !== 'POST') return void res.writeHead(404).end();
    const { content } = JSON.parse(body);
    const answer = () => {
      const user = message(match[1], 1, 'user', content, null);
      const assistant = message(match[1], 2, 'assistant', REPLY.slice(0, 60), user.id);
      const json = JSON.stringify({ userMessage: user, assistantMessage: assistant });
      res.writeHead(201, { 'content-type': 'application/json; charset=utf-8' }).end(json);
    };
    if (settings.delayMs > 0) setTimeout(answer, settings.delayMs);
    else answer();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
