import { LlmMessage, LlmProvider, LlmReply, LlmRequest } from '../../src/llm/llm-provider';

export interface RecordedCall {
  request: LlmRequest;
  /** Calls in flight (including this one) when it started. */
  inFlightAtStart: number;
}

type Responder = (request: LlmRequest, call: number) => Promise<LlmReply> | LlmReply;

/** The default answer: names the message it replies to, so tests can check who answered what. */
export const echoReply = (request: LlmRequest): LlmReply => {
  const last = request.messages[request.messages.length - 1] as LlmMessage;
  return {
    content: `reply to: ${last.content}`,
    model: 'fake-model',
    usage: { promptTokens: 10, completionTokens: 3 },
  };
};

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

  async complete(request: LlmRequest): Promise<LlmReply> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const call = this.calls.push({ request, inFlightAtStart: this.inFlight });
    try {
      // Yield to the event loop so concurrent requests genuinely interleave.
      await new Promise((resolve) => setImmediate(resolve));
      return await this.respond(request, call);
    } finally {
      this.inFlight -= 1;
    }
  }
}
