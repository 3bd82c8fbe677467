import { NestExpressApplication } from '@nestjs/platform-express';
import request from 'supertest';
import { echoReply, RecordingLlmProvider } from '../support/recording-llm-provider';
import { createTestApp } from '../support/test-app';

describe('Turn backpressure (e2e)', () => {
  let app: NestExpressApplication;
  let llm: RecordingLlmProvider;
  const http = () => request(app.getHttpServer());
  const send = (chatId: string, content: string) => http().post(`/chats/${chatId}/messages`).send({ content });
  /** Waits until the service reports `count` admitted turns (a bounded poll of /metrics). */
  const turnsInFlight = async (count: number) => {
    for (let attempt = 0; attempt < 200; attempt++) {
      if ((await http().get('/metrics')).text.includes(`chat_turns_in_flight ${count}\n`)) return;
    }
    throw new Error(`never saw ${count} turns in flight`);
  };

  beforeEach(async () => {
    llm = new RecordingLlmProvider();
    app = await createTestApp({ llm, env: { MAX_PENDING_TURNS_PER_CHAT: '2' } });
  });
  /** Lets the held first turn answer; called again after each test, so a failed one leaves none held. */
  let release = () => {};
  afterEach(async () => {
    release();
    await app.close();
  });

  it('should answer 429 with Retry-After once MAX_PENDING_TURNS_PER_CHAT turns wait on a chat beside the running one', async () => {
    const [busy, other] = [
      (await http().post('/chats').expect(201)).body.id,
      (await http().post('/chats').expect(201)).body.id,
    ];
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const firstStarted = new Promise<void>((resolve) => (started = resolve));
    llm.respond = async (req, call) => {
      if (call === 1) {
        started();
        await held;
      }
      return echoReply(req);
    };
    // supertest sends on then(): start both now.
    const running = send(busy, 'first').then((r) => r);
    await firstStarted;
    // The turn that holds the chat takes no waiting place: two may wait beside it.
    const waiting = [send(busy, 'second').then((r) => r), send(busy, 'third').then((r) => r)];
    await turnsInFlight(3);
    const refused = await send(busy, 'too many').expect(429);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(refused.body).toMatchObject({ type: 'urn:konko:problem:chat-busy', status: 429 });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const streamed = await send(busy, 'fourth').set('Accept', 'text/event-stream');
    expect(streamed.status).toBe(429);

    await send(other, 'another chat is not affected').expect(201);
    release();
    expect((await running).status).toBe(201);
    expect((await Promise.all(waiting)).map((r) => r.status)).toEqual([201, 201]);
    await send(busy, 'room again').expect(201);
    const contents = (await http().get(`/chats/${busy}/messages`).expect(200)).body.data.map(
      (m: { content: string }) => m.content,
    );
    expect(contents).not.toContain('too many');
    expect(contents).not.toContain('fourth');
  });
});
