import { LlmMessage, LlmRole } from '../../src/llm/llm-provider';
import { RequestBodyEncoder } from '../../src/llm/request-body-encoder';

const HEAD = '{"messages":[';
const TAIL = '],"model":"gpt-4.1-mini","stream":true}';
const TEXTS = ['plain', 'line\nbreak', 'say "hi"', 'back\\slash', '\u0001', '\u2028', 'lone \ud800', 'é😀', ''];

/** What the body must be: the messages as `JSON.stringify` writes them. */
const expected = (messages: readonly LlmMessage[]) =>
  HEAD + messages.map(({ role, content }) => JSON.stringify({ role, content })).join(',') + TAIL;

/** Encodes and checks the body's bytes against the expected text's UTF-8. */
function expectExact(encoder: RequestBodyEncoder, messages: readonly LlmMessage[]): void {
  const body = encoder.encode(HEAD, messages, TAIL);
  expect(body.toString('utf8')).toBe(expected(messages));
  expect(body.equals(Buffer.from(expected(messages), 'utf8'))).toBe(true);
}

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe(RequestBodyEncoder.name, () => {
  it.each([
    ['room for every chat', 64 * 1024 * 1024],
    ['room for about one body', 2_000],
    ['no room for any body', 100],
  ])(
    'should encode every body exactly over chats whose contexts slide, change prompt, repeat and change (%s)',
    (_, maxBytes) => {
      const next = random(42);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)];
      const encoder = new RequestBodyEncoder(maxBytes);
      const frozen = (role: LlmRole, content: string) => Object.freeze({ role, content });
      const chats = Array.from({ length: 3 }, (_, chat) => ({
        system: frozen('system', `You are chat ${chat}.`),
        history: [] as LlmMessage[],
        window: 2 + chat * 5,
      }));
      // Not frozen, so changed between bodies as a caller may.
      const draft: LlmMessage = { role: 'user', content: 'draft' };

      for (let step = 0; step < 600; step++) {
        const chat = pick(chats);
        const action = next();
        if (action < 0.05) chat.system = frozen('system', `${pick(TEXTS)} prompt ${step}`);
        const turns = action < 0.1 ? 3 : 1;
        for (let i = 0; i < turns; i++) {
          chat.history.push(frozen('user', `${pick(TEXTS)} ${step}`), frozen('assistant', `${pick(TEXTS)}!`));
        }
        // Mostly the newest window; sometimes one that ends earlier (an older message answered again).
        const end = action > 0.9 ? Math.max(0, chat.history.length - 1 - Math.floor(next() * 6)) : chat.history.length;
        const context: LlmMessage[] = [chat.system, ...chat.history.slice(Math.max(0, end - chat.window), end)];
        if (action > 0.8 && action <= 0.9) {
          draft.content = `${pick(TEXTS)} draft ${step}`;
          // Anywhere after the system prompt, the newest place included.
          context.splice(1 + Math.floor(next() * context.length), 0, draft);
        }

        expectExact(encoder, context);
      }
    },
  );

  it('should encode an empty list of messages', () => {
    expectExact(new RequestBodyEncoder(), []);
  });

  it('should encode again a message that changed and was frozen after it was sent', () => {
    const encoder = new RequestBodyEncoder();
    const system = Object.freeze({ role: 'system' as const, content: 'You are terse.' });
    const edited: LlmMessage = { role: 'user', content: 'first words' };
    const reply = Object.freeze({ role: 'assistant' as const, content: 'Noted.' });
    expectExact(encoder, [system, edited, reply]);

    edited.content = 'second words';
    Object.freeze(edited);

    expectExact(encoder, [system, edited, reply, Object.freeze({ role: 'user' as const, content: 'And?' })]);
  });

  it('should copy the history a body shares with the last one rather than read its messages again', () => {
    let reads = 0;
    const counted = (role: LlmRole, content: string): LlmMessage =>
      Object.freeze({
        role,
        get content() {
          reads++;
          return content;
        },
      });
    const system = counted('system', 'You are terse.');
    const history = Array.from({ length: 6 }, (_, i) => counted(i % 2 ? 'assistant' : 'user', `message ${i}`));
    const encoder = new RequestBodyEncoder();
    encoder.encode(HEAD, [system, ...history.slice(0, 4)], TAIL);
    reads = 0;

    // The window slides: the oldest two drop out, two new messages come in.
    const context = [system, ...history.slice(2, 6)];
    const body = encoder.encode(HEAD, context, TAIL).toString('utf8');

    expect(reads).toBe(2);
    expect(body).toBe(expected(context));
  });
});
