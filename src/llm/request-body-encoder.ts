import { LRUCache } from 'lru-cache';
import { LlmMessage } from './llm-provider';

/** A body as sent: its bytes, its messages, and where each message's JSON lies in the bytes. */
interface EncodedBody {
  bytes: Buffer;
  messages: readonly LlmMessage[];
  /** 1 where the message was frozen when encoded: only then are its bytes still its JSON. */
  frozen: Uint8Array;
  /** Message i's JSON is `bytes[starts[i], ends[i])`; neighbours are one comma apart. */
  starts: Int32Array;
  ends: Int32Array;
}

/** Several hundred full 8,192-token contexts, with the messages they keep alive. */
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const COMMA = 0x2c;

const jsonOf = ({ role, content }: LlmMessage): string =>
  `{"role":${JSON.stringify(role)},"content":${JSON.stringify(content)}}`;

/**
 * Encodes request bodies whose messages repeat most of an earlier request's, as a chat's turns
 * do (a full window's turn costs 0.3 ms less CPU with it; docs/performance.md). It relies on the
 * contract of LlmRequest.messages: a frozen message never changes, and is the same object in
 * every request that holds it. So the history two requests share is copied from the earlier
 * body's bytes in one piece rather than joined and encoded again, message by message, which was
 * most of a long chat's extra cost per turn. Only messages frozen when they were encoded are
 * reused, since another could have changed since. Each conversation keeps its last body only (found by its last message, which the
 * next turn's context holds too), within `maxBytes` over all of them with the messages they keep
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
    // For each message, the index of the same message in the earlier body, or -1 to encode it.
    const source = new Int32Array(count).fill(-1);
    if (earlier) {
      const { body, at } = earlier;
      // The shared history: the run ending with the earlier body's last message, walked back.
      for (let i = at, j = body.messages.length - 1; i >= 0 && j >= 0 && isSame(messages[i], body, j); i--, j--) {
        source[i] = j;
      }
      // The system prompt, before the oldest messages that no longer fit.
      if (source[0] < 0 && isSame(messages[0], body, 0)) source[0] = 0;
    }
    const encoded: string[] = new Array<string>(count);
    let size = Buffer.byteLength(head) + Buffer.byteLength(tail) + Math.max(0, count - 1);
    for (let i = 0; i < count; i++) {
      if (source[i] >= 0) {
        size += earlier!.body.ends[source[i]] - earlier!.body.starts[source[i]];
      } else {
        encoded[i] = jsonOf(messages[i]);
        size += Buffer.byteLength(encoded[i]);
      }
    }
    // Not from Buffer's shared pool: a kept body would hold on to a whole pool slab.
    const bytes = Buffer.allocUnsafeSlow(size);
    const starts = new Int32Array(count);
    const ends = new Int32Array(count);
    const frozen = new Uint8Array(count);
    // A message copied from the earlier body was frozen there; only the others are looked at, since
    // reading each of a long history's objects every turn costs a cache miss apiece.
    for (let i = 0; i < count; i++) if (source[i] >= 0 || Object.isFrozen(messages[i])) frozen[i] = 1;
    let offset = bytes.write(head, 0);
    for (let i = 0; i < count;) {
      if (i > 0) bytes[offset++] = COMMA;
      if (source[i] < 0) {
        starts[i] = offset;
        offset += bytes.write(encoded[i], offset);
        ends[i] = offset;
        i++;
        continue;
      }
      // A run of consecutive earlier messages is copied at once, the commas between them included.
      const from = earlier!.body;
      let last = i;
      while (last + 1 < count && source[last + 1] === source[last] + 1) last++;
      const runStart = from.starts[source[i]];
      const shift = offset - runStart;
      from.bytes.copy(bytes, offset, runStart, from.ends[source[last]]);
      for (let k = i; k <= last; k++) {
        starts[k] = from.starts[source[k]] + shift;
        ends[k] = from.ends[source[k]] + shift;
      }
      offset = ends[last];
      i = last + 1;
    }
    offset += bytes.write(tail, offset);
    if (offset !== size) throw new Error(`Request body encoded to ${offset} bytes, ${size} expected.`);

    if (earlier) this.bodies.delete(earlier.body.messages[earlier.body.messages.length - 1]);
    if (count > 0 && frozen[count - 1] === 1) {
      this.bodies.set(messages[count - 1], { bytes, messages: messages.slice(), frozen, starts, ends });
    }
    return bytes;
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

/** The earlier body's message `at`, frozen when encoded there, so its bytes are still its JSON. */
const isSame = (message: LlmMessage, earlier: EncodedBody, at: number): boolean =>
  message === earlier.messages[at] && earlier.frozen[at] === 1;
