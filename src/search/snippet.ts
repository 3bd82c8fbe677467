import { stemOf, wordsWithOffsets } from './search-terms';

/** An excerpt of a message around its first match, and the matched words in it. */
export interface Snippet {
  text: string;
  /** [start, end) of each matched word in `text`, in UTF-16 code units. */
  matches: [number, number][];
}

const SNIPPET_LENGTH = 160;
/** How much of the text before the first match the excerpt shows. */
const LEAD = 50;
const ELLIPSIS = '…';

/**
 * The excerpt of `content` around the first word that matches a term (by stem, as the search
 * did), cut at word boundaries, with `…` where it was cut; no markup is added. Should no word
 * match by this stemmer (a storage that stems otherwise found it), the excerpt is the start.
 */
export function snippetOf(content: string, terms: readonly string[]): Snippet {
  const stems = new Set(terms.map(stemOf));
  const words = wordsWithOffsets(content);
  // Stemming is most of the work (13 ms for a 32,000-character message): each distinct word once,
  // and only up to the first match and within the excerpt.
  const stemsOfWords = new Map<string, string>();
  const isMatch = ({ word }: { word: string }) => {
    let stem = stemsOfWords.get(word);
    if (stem === undefined) stemsOfWords.set(word, (stem = stemOf(word)));
    return stems.has(stem);
  };
  const first = words.find(isMatch) ?? { start: 0, end: 0 };
  // Whole words only: from the text's start when the lead reaches it, else from the first word in
  // the lead; to the text's end when it fits, else after the last word that fits.
  const start = first.start <= LEAD ? 0 : words.find((w) => w.start >= first.start - LEAD)!.start;
  let end = content.length;
  if (end - start > SNIPPET_LENGTH) {
    const lastWord = words.findLast((w) => w.end <= start + SNIPPET_LENGTH && w.end >= first.end);
    // A single word longer than the excerpt is cut, but never inside a surrogate pair.
    end = lastWord?.end ?? Math.max(first.end, start + SNIPPET_LENGTH);
    if (/[\uD800-\uDBFF]/.test(content[end - 1] ?? '')) end -= 1;
  }
  const prefix = start > 0 ? ELLIPSIS : '';
  const text = `${prefix}${content.slice(start, end)}${end < content.length ? ELLIPSIS : ''}`;
  const shift = prefix.length - start;
  return {
    text,
    matches: words
      .filter((w) => w.start >= start && w.end <= end && isMatch(w))
      .map((w) => [w.start + shift, w.end + shift]),
  };
}
