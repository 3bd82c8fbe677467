import stem from 'wink-porter2-stemmer';

/**
 * The words PostgreSQL's `english` text search configuration leaves out of every document (the
 * Snowball list). A query drops them on every storage, so that every storage finds the same
 * messages for the same query.
 */
const STOP_WORDS = new Set(
  (
    'i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers ' +
    'herself it its itself they them their theirs themselves what which who whom this that these those am is are ' +
    'was were be been being have has had having do does did doing a an the and but if or because as until while ' +
    'of at by for with about against between into through during before after above below to from up down in out ' +
    'on off over under again further then once here there when where why how all any both each few more most ' +
    'other some such no nor not only own same so than too very s t can will just don should now'
  ).split(' '),
);

/**
 * A word: letters, digits and the marks that belong to them (a Devanagari vowel sign, the accent
 * of a decomposed é), as PostgreSQL's parser and SQLite's tokenizer keep them in their words.
 */
const WORD = /[\p{L}\p{M}\p{N}]+/gu;

/**
 * Lower case, with the final sigma as σ: JavaScript lowers Σ at the end of a word to ς, PostgreSQL
 * always to σ, and SQLite folds both to σ, so "ΟΔΟΣ" and "οδος" are one word on every storage.
 */
const lowerCase = (text: string): string => text.toLowerCase().replaceAll('ς', 'σ');

/** A text's words, lower-cased, with where each starts and ends (UTF-16 offsets). */
export function wordsWithOffsets(text: string): { word: string; start: number; end: number }[] {
  return [...text.matchAll(WORD)].map((match) => ({
    word: lowerCase(match[0]),
    start: match.index,
    end: match.index + match[0].length,
  }));
}

export const wordsOf = (text: string): string[] => lowerCase(text).match(WORD) ?? [];

export const isStopWord = (word: string): boolean => STOP_WORDS.has(word);

/** Porter2 here takes time quadratic in a word's length: 37 ms for 2,000 characters, 6 s for 32,000. */
export const LONGEST_STEMMED_WORD = 64;

/**
 * The stem a lower-case word is found by (Porter2, as PostgreSQL's `english` configuration stems);
 * a word longer than {@link LONGEST_STEMMED_WORD} characters is its own stem.
 */
export const stemOf = (word: string): string => (word.length > LONGEST_STEMMED_WORD ? word : stem(word));

/** What a query asks for: its words, lower-cased, once each, without stop words. */
export const searchTermsOf = (query: string): string[] => [
  ...new Set(wordsOf(query).filter((word) => !isStopWord(word))),
];
