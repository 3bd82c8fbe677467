import type { ExportDocumentDto } from '../../src/transfer/dto/export-document.dto';

const CHAT_ID = '0190a000-0000-7000-8000-0000000000c1';
const idOf = (n: number) => `0190a000-0000-7000-8000-${String(n).padStart(12, '0')}`;
const timeOf = (n: number) => `2026-01-0${n}T10:00:00.000Z`;

type Line = [n: number, role: 'user' | 'assistant', content: string, parent: number | null, status?: 'incomplete'];

/**
 * The export document of a chat with three branches and a second root, an empty stopped reply and
 * a stopped one with text, whose current branch (1, 2, 5, 6) is not its newest message.
 */
export function branchedDocument(): ExportDocumentDto {
  const lines: Line[] = [
    [1, 'user', 'Plan a day in Lisbon', null],
    [2, 'assistant', 'Belém, then Alfama.', 1],
    [3, 'user', 'Add a museum', 2],
    [4, 'assistant', '', 3, 'incomplete'],
    [5, 'user', 'Add a beach', 2],
    [6, 'assistant', 'Cascais is a train ride away.', 5],
    [7, 'assistant', 'Start at', 1, 'incomplete'],
    [8, 'user', 'Plan a day in Porto', null],
  ];
  return {
    format: 'konko.chat.v1',
    chat: {
      id: CHAT_ID,
      title: 'Lisbon',
      systemPrompt: 'Be brief.',
      model: 'llama3',
      metadata: { customerId: 'c_42' },
      messageCount: lines.length,
      createdAt: '2025-12-31T09:00:00.000Z',
      updatedAt: timeOf(8),
      lastMessageAt: timeOf(8),
      currentMessageId: idOf(6),
    },
    messages: lines.map(([n, role, content, parent, status]) => ({
      id: idOf(n),
      chatId: CHAT_ID,
      seq: n,
      role,
      content,
      status: status ?? 'completed',
      inReplyTo: role === 'assistant' ? idOf(parent!) : null,
      parentId: parent === null ? null : idOf(parent),
      model: role === 'assistant' ? 'llama3' : null,
      usage: role === 'assistant' && status === undefined ? { promptTokens: 20 + n, completionTokens: n } : null,
      createdAt: timeOf(n),
    })),
  };
}

/**
 * What two copies of one chat share: the document with each id replaced by its message's seq
 * (`#3`), and without the chat's id and update time.
 */
export function withoutIds(document: ExportDocumentDto) {
  const seqOf = new Map(document.messages.map((m) => [m.id, `#${m.seq}`]));
  const named = (id: string | null) => (id === null ? null : (seqOf.get(id) ?? `unknown ${id}`));
  const { id: _id, updatedAt: _updatedAt, currentMessageId, ...chat } = document.chat;
  return {
    format: document.format,
    chat: { ...chat, currentMessageId: named(currentMessageId) },
    messages: document.messages.map(({ id, chatId: _chatId, parentId, inReplyTo, ...message }) => ({
      ...message,
      id: named(id),
      parentId: named(parentId),
      inReplyTo: named(inReplyTo),
    })),
  };
}
