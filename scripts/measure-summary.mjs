// Times GET /chats/{id}/summary on a 5,000-message chat against the built service (npm run build
// first), with the offline provider: cold (every message analysed), cached, and after one more turn.
import { spawn } from 'node:child_process';
import { once } from 'node:events';

const MESSAGES = Number(process.env.MESSAGES ?? 5000);
const service = spawn(process.execPath, ['dist/main.js'], {
  env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LLM_PROVIDER: 'offline', DATABASE_URL: '', NO_COLOR: '1' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let output = '';
const [base] = await new Promise((resolve) =>
  service.stdout.on('data', (chunk) => {
    output += chunk;
    const match = /listening on (http:\/\/\S+)/.exec(output);
    if (match) resolve([match[1]]);
  }),
);
const post = (path, body) =>
  fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
const sentences = [
  'How do I configure the PostgreSQL connection pool for our service?',
  'The delivery was late again and I am really unhappy with the support.',
  'We loved the trip to Lisbon, the tram rides and the custard tarts were wonderful.',
  'Can you explain how the refund process works for cancelled orders?',
];
const { id } = await (await post('/chats', { title: 'Summary benchmark' })).json();
for (let i = 0; i < MESSAGES / 2; i++) await post(`/chats/${id}/messages`, { content: `${sentences[i % 4]} (#${i})` });

async function timeSummary(label) {
  const started = process.hrtime.bigint();
  const response = await fetch(`${base}/chats/${id}/summary`);
  const summary = await response.json();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(`${label.padEnd(34)} ${ms.toFixed(1).padStart(8)} ms  (${summary.messageCount} messages)`);
}
await timeSummary('cold: every message analysed');
await timeSummary('unchanged chat: cached');
await post(`/chats/${id}/messages`, { content: 'One more question about the connection pool.' });
await timeSummary('after one more turn: incremental');
service.kill('SIGTERM');
await once(service, 'exit');
