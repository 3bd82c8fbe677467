import { setImmediate as nextTick } from 'node:timers/promises';
import { LlmMessage, LlmProvider, LlmReply, LlmRequest, LlmStreamPart } from '../../src/llm/llm-provider';

export interface RecordedCall {
  request: LlmRequest;
  /** Calls in flight (including this one) when it started. */
  inFlightAtStart: number;
}

/** A whole reply, or the stream parts to send. */
type Response = LlmReply | AsyncIterable<LlmStreamPart>;
export type Responder = (request: LlmRequest, call: number) => Promise<Response> | Response;

/** The default answer: names the message it replies to, so tests can check who answered what. */
export const echoReply = (request: LlmRequest): LlmReply => {
  const last = request.messages[request.messages.length - 1] as LlmMessage;
  return {
    content: `reply to: ${last.content}`,
    model: 'fake-model',
    usage: { promptTokens: 10, completionTokens: 3 },
  };
};

/** A reply as a stream of word-sized deltas and a finish. */
export async function* streamOf(reply: LlmReply): AsyncGenerator<LlmStreamPart> {
  for (const piece of reply.content.match(/\S+\s*/g) ?? []) yield { type: 'delta', content: piece };
  yield { type: 'finish', model: reply.model, usage: reply.usage, ...(reply.reason && { reason: reply.reason }) };
}

/**
 * A fake LLM for tests: records every request, tracks how many calls overlap, and answers
 * through a replaceable responder.
 */
export class RecordingLlmProvider extends LlmProvider {
  readonly name = 'recording';
  readonly calls: RecordedCall[] = [];
  inFlight = 0;
  maxInFlight = 0;

  constructor(public respond: Responder = echoReply) {
    super();
  }

  async *stream(request: LlmRequest): AsyncGenerator<LlmStreamPart> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const call = this.calls.push({ request, inFlightAtStart: this.inFlight });
    try {
      // Yield to the event loop so concurrent requests genuinely interleave.
      await nextTick();
      const response = await this.respond(request, call);
      yield* 'content' in response ? streamOf(response) : response;
    } finally {
      this.inFlight -= 1;
    }
  }
}
