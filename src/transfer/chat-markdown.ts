import { Chat } from '../chats/chat';
import { Message } from '../chats/message';

const ROLE_HEADINGS = { user: 'User', assistant: 'Assistant' } as const;

/** A heading holds one line: a title's line breaks would end it early. */
const oneLine = (text: string) => text.replace(/\s+/g, ' ').trim();

/**
 * The chat as Markdown: its title, then its current branch (`pages`, root first), a section a
 * message. Contents go in as they are: replies are Markdown already.
 */
export async function* chatMarkdown(chat: Chat, pages: AsyncIterable<Message[]>): AsyncGenerator<string> {
  yield `# ${chat.title === null ? 'Untitled chat' : oneLine(chat.title)}\n`;
  for await (const page of pages) {
    yield page
      .map(({ role, status, content }) => {
        const heading = `${ROLE_HEADINGS[role]}${status === 'incomplete' ? ' (incomplete)' : ''}`;
        return `\n## ${heading}\n\n${content}\n`;
      })
      .join('');
  }
}
