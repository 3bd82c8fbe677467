import { Chat } from '../chats/chat';
import { Message } from '../chats/message';

const ROLE_HEADINGS = { user: 'User', assistant: 'Assistant' } as const;

/** What ends a line in Markdown: a lone CR too, so it is quoted like any other line break. */
const LINE_BREAK = /\r\n|\r|\n/;

/**
 * A title as heading text: one line, and `#` escaped, since a trailing run of them would close
 * the heading and be dropped. The backslashes render away.
 */
const headingText = (title: string) => title.replace(/\s+/g, ' ').trim().replaceAll('#', '\\#');

/**
 * Every line of a message in a block quote: nothing it holds (a heading, a `---`, an unclosed
 * code fence or HTML block) can end its section or start one, and its Markdown still renders.
 * Taking `> ` off each line gives the content back, with `\n` line breaks.
 */
const quoted = (content: string) =>
  content
    .split(LINE_BREAK)
    .map((line) => (line === '' ? '>' : `> ${line}`))
    .join('\n');

/** The first line of the Markdown export: the chat's title as its one `#` heading. */
export const markdownTitle = (title: string | null) => `# ${title === null ? 'Untitled chat' : headingText(title)}\n`;

/** One message of the Markdown export: a `##` heading naming its role, then its content, quoted. */
export function markdownSection({ role, status, content }: Pick<Message, 'role' | 'status' | 'content'>): string {
  const heading = `${ROLE_HEADINGS[role]}${status === 'incomplete' ? ' (incomplete)' : ''}`;
  return `\n## ${heading}\n\n${content === '' ? '' : quoted(content)}\n`;
}

/** The chat as Markdown: its title, then its current branch (`pages`, root first), a section a message. */
export async function* chatMarkdown(chat: Chat, pages: AsyncIterable<Message[]>): AsyncGenerator<string> {
  yield markdownTitle(chat.title);
  for await (const page of pages) yield page.map(markdownSection).join('');
}
