import { CHAT_LIMITS } from '../chats/dto/chat-limits';
import { hasAtMostCharacters } from '../common/validation/max-characters.decorator';
import { storableText, textProblem } from '../common/validation/storable-text';

/**
 * The longest reply the service stores, in characters (code points), as an import takes it: about
 * 64,000 tokens. A turn stops asking once its reply is this long, so every reply exports into an
 * import, and PostgreSQL's search index of one stays well under its 1 MB limit (text this long of
 * distinct words takes about 400 KB there).
 */
export const MAX_REPLY_LENGTH = 256_000;

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit <= 0xdbff;

/**
 * A reply as its deltas arrive, as every storage keeps it and every import takes it: held to
 * MAX_REPLY_LENGTH characters, with U+0000 and lone surrogates as U+FFFD (see storableText).
 */
export class ReplyText {
  content = '';
  /** A delta was cut at MAX_REPLY_LENGTH: nothing more is taken. */
  full = false;
  /** Characters in `content`, counted only once it may be near the limit. */
  private characters: number | undefined;
  /** A high surrogate that ended the last delta, which the next one may complete. */
  private pending = '';

  /** Appends what of `delta` is whole and still fits, and answers it. */
  take(delta: string): string {
    let text = this.pending + delta;
    this.pending = '';
    if (isHighSurrogate(text.charCodeAt(text.length - 1))) {
      this.pending = text.slice(-1);
      text = text.slice(0, -1);
    }
    return this.append(storableText(text));
  }

  /** At the reply's end: a high surrogate that no delta completed, as U+FFFD (or nothing). */
  end(): string {
    if (!this.pending) return '';
    this.pending = '';
    return this.append('\uFFFD');
  }

  private append(text: string): string {
    if (this.full) return '';
    // A character is one or two UTF-16 units: a text of at most MAX_REPLY_LENGTH units fits.
    if (this.characters === undefined && this.content.length + text.length <= MAX_REPLY_LENGTH) {
      this.content += text;
      return text;
    }
    this.characters ??= countCharacters(this.content);
    let room = MAX_REPLY_LENGTH - this.characters;
    let units = 0;
    for (const character of text) {
      if (room === 0) break;
      units += character.length;
      room--;
    }
    const taken = units === text.length ? text : text.slice(0, units);
    this.full = taken !== text;
    this.characters = MAX_REPLY_LENGTH - room;
    this.content += taken;
    return taken;
  }
}

function countCharacters(text: string): number {
  let count = 0;
  for (const _character of text) count++;
  return count;
}

/** The model the upstream named, if an import would take it (a name of at most 200 characters). */
export function storableModel(model: string | undefined): string | undefined {
  if (typeof model !== 'string' || model === '' || textProblem(model) !== null) return undefined;
  return hasAtMostCharacters(model, CHAT_LIMITS.modelLength) ? model : undefined;
}
