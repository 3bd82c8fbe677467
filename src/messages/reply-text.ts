/**
 * The longest reply the service stores, in characters (code points), as an import takes it: about
 * 64,000 tokens. A turn stops asking once its reply is this long, so every reply exports into an
 * import, and PostgreSQL's search index of one stays well under its 1 MB limit (text this long of
 * distinct words takes about 400 KB there).
 */
export const MAX_REPLY_LENGTH = 256_000;

/** A reply as its deltas arrive, held to MAX_REPLY_LENGTH characters. */
export class ReplyText {
  content = '';
  /** Characters in `content`, counted only once it may be near the limit. */
  private characters: number | undefined;

  /** Appends what of `delta` still fits, and answers it: all of it, or less once the reply is full. */
  take(delta: string): string {
    // A character is one or two UTF-16 units: a text of at most MAX_REPLY_LENGTH units fits.
    if (this.characters === undefined && this.content.length + delta.length <= MAX_REPLY_LENGTH) {
      this.content += delta;
      return delta;
    }
    this.characters ??= countCharacters(this.content);
    let room = MAX_REPLY_LENGTH - this.characters;
    let units = 0;
    for (const character of delta) {
      if (room === 0) break;
      units += character.length;
      room--;
    }
    const taken = units === delta.length ? delta : delta.slice(0, units);
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
