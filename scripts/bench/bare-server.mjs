// The benchmark's ceiling and floor, with no framework, no storage and no history:
// - POST /chats/{id}/messages answers like the service does (parse the JSON body, 201 with a user
//   message and a reply of the same shape) with no upstream call; after `delayMs` when set, as a
//   baseline for a slow upstream. This is the machine's ceiling for W1 and baseline for W2.
// - POST /proxy/undici/chats/{id}/messages does what a turn must do at the least: it asks the
//   upstream (the URL given as the first argument) for a streamed completion of the message with
//   undici, and answers the same 201, or forwards the reply as the service's events with
//   `Accept: text/event-stream`. This is the floor under W1, W2, W3 and W6: what the machine's
//   loopback and Node's HTTP cost a turn before any of the service's own work.
// - POST /proxy/openai/chats/{id}/messages does the same through the official `openai` client with
//   the service provider's undici-based fetch (from dist/): the floor of any turn that asks its
//   upstream through that client.
// The proxy reads only what the fake upstream sends: `data:` events, each ended by a blank line.
// Control: POST /_bench {"delayMs": n}. Prints `listening <port>` once ready.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import { undiciFetch } from '../../dist/llm/undici-fetch.js';

const REPLY = 'Sure thing, here is what the loopback upstream has to say about your message today.';
const settings = { delayMs: 0 };
const upstreamBase = process.argv[2];
const upstream = new Agent({ keepAliveTimeout: 60_000 });
const client = new OpenAI({
  apiKey: 'bench',
  baseURL: upstreamBase,
  maxRetries: 0,
  logLevel: 'off',
  fetch: undiciFetch(),
});
const question = (content) => ({
  model: 'bench-model',
  messages: [{ role: 'user', content }],
  stream: true,
  stream_options: { include_usage: true },
});

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

/** The upstream's streamed reply: each delta's content as it arrives. */
const deltas = {
  async *openai(content) {
    for await (const chunk of await client.chat.completions.create(question(content))) {
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) yield delta;
    }
  },
  async *undici(content) {
    const response = await request(`${upstreamBase}/chat/completions`, {
      method: 'POST',
      dispatcher: upstream,
      headers: { 'content-type': 'application/json', authorization: 'Bearer bench' },
      body: JSON.stringify(question(content)),
    });
    if (response.statusCode !== 200) throw new Error(`upstream answered ${response.statusCode}`);
    response.body.setEncoding('utf8');
    let buffered = '';
    for await (const chunk of response.body) {
      buffered += chunk;
      let end;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const data = buffered.slice(buffered.indexOf('data: ') + 6, end);
        buffered = buffered.slice(end + 2);
        if (data === '[DONE]') continue;
        const delta = JSON.parse(data).choices[0]?.delta?.content;
        if (delta) yield delta;
      }
    }
  },
};

/** The whole reply, each delta passed to `onDelta` on the way. */
async function complete(through, content, onDelta) {
  let reply = '';
  for await (const delta of deltas[through](content)) {
    reply += delta;
    onDelta(delta);
  }
  return reply;
}

function proxy(req, res, chatId, content, through) {
  const user = message(chatId, 1, 'user', content, null);
  const streamed = req.headers.accept === 'text/event-stream';
  const send = (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  if (streamed) {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    send('user_message', user);
  }
  complete(through, content, (delta) => streamed && send('delta', { content: delta })).then(
    (reply) => {
      const assistant = message(chatId, 2, 'assistant', reply, user.id);
      if (!streamed) {
        const json = JSON.stringify({ userMessage: user, assistantMessage: assistant });
        return void res.writeHead(201, { 'content-type': 'application/json; charset=utf-8' }).end(json);
      }
      send('assistant_message', assistant);
      res.end();
    },
    (error) => {
      if (streamed) res.end(`event: error\ndata: ${JSON.stringify({ detail: error.message })}\n\n`);
      else res.writeHead(502).end(error.message);
    },
  );
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
    const match = /^(?:\/proxy\/(undici|openai))?\/chats\/([^/]+)\/messages$/.exec(req.url ?? '');
    if (!match || req.method !== 'POST') return void res.writeHead(404).end();
    const { content } = JSON.parse(body);
    if (match[1]) return proxy(req, res, match[2], content, match[1]);
    const answer = () => {
      const user = message(match[2], 1, 'user', content, null);
      const assistant = message(match[2], 2, 'assistant', REPLY.slice(0, 60), user.id);
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
