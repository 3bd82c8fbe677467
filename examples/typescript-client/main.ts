import createClient from 'openapi-fetch';
import type { components, paths } from './api';

type Chat = components['schemas']['ChatDto'];
type Turn = components['schemas']['TurnDto'];
type MessagePage = components['schemas']['MessagePageDto'];
type Problem = components['schemas']['ProblemDto'];

export interface ExampleOptions {
  /** Needed only when the service runs with API_KEYS or API_KEYS_FILE. */
  apiKey?: string;
  print?: (line: string) => void;
}

export interface ExampleResult {
  chat: Chat;
  turn: Turn;
  page: MessagePage;
}

const PAGE_SIZE = 10;

/** Every error the service answers is a problem document; its title and detail say what went wrong. */
function failed(operation: string, problem: Problem): Error {
  return new Error(`${operation} failed: ${problem.status} ${problem.title}: ${problem.detail}`);
}

/** Creates a chat, sends it a message and reads its first page of messages back. */
export async function main(
  baseUrl: string,
  { apiKey, print = console.log }: ExampleOptions = {},
): Promise<ExampleResult> {
  const client = createClient<paths>({
    baseUrl,
    headers: apiKey === undefined ? {} : { Authorization: `Bearer ${apiKey}` },
  });

  const created = await client.POST('/chats', { body: { title: 'Typed client example' } });
  if (created.error) throw failed('POST /chats', created.error);
  const chat = created.data;
  print(`Created chat ${chat.id} (model ${chat.model})`);

  const sent = await client.POST('/chats/{chatId}/messages', {
    params: { path: { chatId: chat.id } },
    body: { content: 'Hello! What can you do?' },
  });
  if (sent.error) throw failed('POST /chats/{chatId}/messages', sent.error);
  // The operation's other success is the streamed reply (a string of events), which is only sent
  // on `Accept: text/event-stream` or `?stream=true`: this request asked for JSON.
  if (typeof sent.data === 'string') throw new Error('POST /chats/{chatId}/messages streamed the reply');
  const turn = sent.data;
  print(`Sent #${turn.userMessage.seq}: ${turn.userMessage.content}`);
  print(`Reply #${turn.assistantMessage.seq} (${turn.assistantMessage.status}): ${turn.assistantMessage.content}`);

  const listed = await client.GET('/chats/{chatId}/messages', {
    params: { path: { chatId: chat.id }, query: { limit: PAGE_SIZE } },
  });
  if (listed.error) throw failed('GET /chats/{chatId}/messages', listed.error);
  const page = listed.data;
  print(`Read ${page.data.length} messages${page.nextCursor === null ? '' : ' (more follow)'}:`);
  for (const message of page.data) print(`  #${message.seq} ${message.role}: ${message.content}`);

  return { chat, turn, page };
}

if (require.main === module) {
  main(process.env.KONKO_URL ?? 'http://localhost:3000', { apiKey: process.env.KONKO_API_KEY }).catch(
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
