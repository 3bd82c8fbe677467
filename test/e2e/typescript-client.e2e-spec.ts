import { main } from '../../examples/typescript-client/main';
import { ServiceProcess, startService } from '../support/service-process';

describe('The typed client example (e2e, built service)', () => {
  let service: ServiceProcess;

  beforeAll(async () => {
    service = await startService();
  });
  afterAll(() => service.stop());

  it('should create a chat, send it a message and read back the message and its reply', async () => {
    const printed: string[] = [];
    const { chat, turn, page } = await main(service.baseUrl, { print: (line) => printed.push(line) });

    const { userMessage, assistantMessage } = turn;
    expect(userMessage).toMatchObject({ chatId: chat.id, seq: 1, role: 'user', content: 'Hello! What can you do?' });
    expect(assistantMessage).toMatchObject({
      chatId: chat.id,
      seq: 2,
      role: 'assistant',
      status: 'completed',
      inReplyTo: userMessage.id,
    });
    expect(assistantMessage.content).toMatch(/^No language model is configured/);
    expect(page).toEqual({ data: [userMessage, assistantMessage], nextCursor: null });
    expect(printed).toEqual([
      `Created chat ${chat.id} (model gpt-4.1-mini)`,
      'Sent #1: Hello! What can you do?',
      `Reply #2 (completed): ${assistantMessage.content}`,
      'Read 2 messages:',
      '  #1 user: Hello! What can you do?',
      `  #2 assistant: ${assistantMessage.content}`,
    ]);
  });
});
