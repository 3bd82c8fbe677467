import { LRUCache } from 'lru-cache';
import { LlmMessage } from './llm-provider';

/** A body as sent, kept only when every one of its messages was frozen, so its bytes are still their JSON. */
interface EncodedBody {
  bytes: Buffer;
  messages: readonly LlmMessage[];
  /** Message i's JSON ends at `ends[i]` and starts one byte (a comma) after `ends[i - 1]`, or at `start`. */
  ends: Int32Array;
  start: number;
}

/** Several hundred full 8,192-token contexts, with the messages they keep alive. */
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const COMMA = 0x2c;

const jsonOf = ({ role, content }: LlmMessage): string =>
  `{"role":${JSON.stringify(role)},"content":${JSON.stringify(content)}}`;

const startOf = (body: EncodedBody, at: number): number => (at === 0 ? body.start : body.ends[at - 1] + 1);

/**
 * Encodes request bodies whose messages repeat most of an earlier request's, as a chat's turns
 * do (a full window's turn costs 0.3 ms less CPU with it; docs/performance.md). It relies on the
 * contract of LlmRequest.messages: a frozen message never changes, and is the same object in
 * every request that holds it. So the history two requests share is copied from the earlier
 * body's bytes in one piece, its length and offsets read off the earlier body's, rather than
 * joined and encoded again message by message, which was most of a long chat's extra cost per
 * turn. Each conversation keeps its last body only (found by its last message, which the next
 * turn's context holds too), within `maxBytes` over all of them with the messages they keep
 * alive, least recently used first out; a body no context shares any more waits for that too.
 */
export class RequestBodyEncoder {
  private readonly bodies: LRUCache<LlmMessage, EncodedBody>;

  constructor(maxBytes = DEFAULT_MAX_BYTES) {
    this.bodies = new LRUCache({
      maxSize: maxBytes,
      // The bytes, and at most twice as much for the text of the messages the body keeps alive
      // (V8 stores a string at one or two bytes a character), plus their offsets and objects.
      sizeCalculation: (body) => 3 * body.bytes.length + 64 * body.messages.length,
    });
  }

  /** `head`, the messages' JSON separated by commas, then `tail`, as UTF-8. */
  encode(head: string, messages: readonly LlmMessage[], tail: string): Buffer {
    const count = messages.length;
    const earlier = this.earlierBody(messages);
    // messages[from..to) are the earlier body's messages[shared..): the history both hold, whose
    // JSON is its bytes [runStart, runEnd), commas between included. The system prompt before them
    // is copied too when it is the earlier body's first message.
    const body = earlier?.body;
    let from = count;
    let to = count;
    let shared = 0;
    let runStart = 0;
    let runEnd = 0;
    let promptToo = false;
    if (earlier && body) {
      let i = earlier.at;
      let j = body.messages.length - 1;
      while (i >= 0 && j >= 0 && messages[i] === body.messages[j]) {
        i--;
        j--;
      }
      from = i + 1;
      to = earlier.at + 1;
      shared = j + 1;
      runStart = startOf(body, shared);
      runEnd = body.ends[body.messages.length - 1];
      promptToo = from > 0 && messages[0] === body.messages[0];
    }
    // Only the messages outside the shared history are encoded, in order.
    const encoded: string[] = [];
    let size = Buffer.byteLength(head) + Buffer.byteLength(tail) + Math.max(0, count - 1);
    for (let i = 0; i < count; i++) {
      if (i === from) {
        // The commas between its messages are counted above.
        size += runEnd - runStart - (to - from - 1);
        i = to - 1;
      } else if (i === 0 && promptToo) {
        size += body!.ends[0] - body!.start;
      } else {
        const json = jsonOf(messages[i]);
        encoded.push(json);
        size += Buffer.byteLength(json);
      }
    }
    // Not from Buffer's shared pool: a kept body would hold on to a whole pool slab.
    const bytes = Buffer.allocUnsafeSlow(size);
    const ends = new Int32Array(count);
    const start = bytes.write(head, 0);
    let offset = start;
    let next = 0;
    for (let i = 0; i < count; i++) {
      if (i > 0) bytes[offset++] = COMMA;
      if (i === from) {
        const shift = offset - runStart;
        offset += body!.bytes.copy(bytes, offset, runStart, runEnd);
        for (let k = from, j = shared; k < to; k++, j++) ends[k] = body!.ends[j] + shift;
        i = to - 1;
      } else if (i === 0 && promptToo) {
        offset += body!.bytes.copy(bytes, offset, body!.start, body!.ends[0]);
        ends[0] = offset;
      } else {
        offset += bytes.write(encoded[next++], offset);
        ends[i] = offset;
      }
    }
    offset += bytes.write(tail, offset);
    if (offset !== size) throw new Error(`Request body encoded to ${offset} bytes, ${size} expected.`);

    if (body) this.bodies.delete(body.messages[body.messages.length - 1]);
    if (count > 0 && this.allFrozenOutside(messages, from, to)) {
      this.bodies.set(messages[count - 1], { bytes, messages: messages.slice(), ends, start });
    }
    return bytes;
  }

  /** Whether every message but the shared history's (frozen when the earlier body kept them) is frozen. */
  private allFrozenOutside(messages: readonly LlmMessage[], from: number, to: number): boolean {
    for (let i = 0; i < messages.length; i++) {
      if (i === from) i = to;
      if (i < messages.length && !Object.isFrozen(messages[i])) return false;
    }
    return true;
  }

  /** The kept body of the newest message that has one, and where that message is in `messages`. */
  private earlierBody(messages: readonly LlmMessage[]): { body: EncodedBody; at: number } | undefined {
    for (let at = messages.length - 1; at >= 0; at--) {
      if (!Object.isFrozen(messages[at])) continue;
      const body = this.bodies.get(messages[at]);
      if (body) return { body, at };
    }
    return undefined;
  }
}
