import { Injectable } from '@nestjs/common';
import winkNLP, { ItemSentence, WinkMethods } from 'wink-nlp';
import model from 'wink-eng-lite-web-model';

/** One sentence of a message, with what the summary needs of it. */
export interface AnalyzedSentence {
  text: string;
  /** Lemmas of the sentence's content words (no stop words, punctuation or filler). */
  terms: string[];
  /** Nouns and noun phrases of the sentence. */
  topics: TopicCandidate[];
  /** wink-nlp's sentiment of the sentence, in [-1, 1]. */
  sentiment: number;
}

/** A candidate topic: a noun, or a short noun phrase such as "connection pool". */
export interface TopicCandidate {
  /** Lemmatized, lower-case; identifies the topic across inflections. */
  key: string;
  /** As written (lower-case), for display. */
  surface: string;
  words: number;
}

export interface MessageAnalysis {
  sentences: AnalyzedSentence[];
}

const NOUNS = new Set(['NOUN', 'PROPN']);
/** Conversational filler that is no stop word but never a topic. */
const FILLER = new Set([
  'thank',
  'thanks',
  'hi',
  'hello',
  'hey',
  'bye',
  'please',
  'ok',
  'okay',
  'yes',
  'yeah',
  'no',
  'lol',
  'thing',
  'something',
  'anything',
  'everything',
  'nothing',
  'stuff',
  'way',
  'lot',
  'bit',
  'kind',
  'sort',
  'time',
  'day',
  'today',
  'tomorrow',
  'question',
  'answer',
  'problem',
  'issue',
  'help',
  'idea',
  'sure',
  'great',
]);
const MAX_PHRASE_WORDS = 3;

let nlp: WinkMethods | undefined;

/**
 * One wink-nlp instance per process: loading the model again grows state inside the model package
 * until it fails (seen after about twenty loads in one test process).
 */
function sharedNlp(): WinkMethods {
  // Only what is used: named-entity recognition would cost as much as everything else together.
  nlp ??= winkNLP(model, ['sbd', 'negation', 'sentiment', 'pos']);
  return nlp;
}

/**
 * wink-nlp reads a long run without white space in time quadratic in its length (a 32,000-character
 * URL-like run took 3.5 s), so the analysis sees such runs broken by a space every 256 characters.
 */
const LONG_RUN = /\S{256}(?=\S)/gu;

/**
 * `text` with its long runs broken, and a way back: the original text of a sentence of the broken
 * one, found from a place on (sentences come in order), its spaces taken out again.
 */
function breakLongRuns(text: string) {
  const spaces: number[] = [];
  const broken = text.replace(LONG_RUN, (run: string, offset: number) => {
    spaces.push(offset + run.length + spaces.length);
    return `${run} `;
  });
  const originalAt = (at: number) => at - spaces.filter((space) => space < at).length;
  let from = 0;
  return {
    broken,
    originalOf(sentence: string): string {
      if (spaces.length === 0) return sentence;
      const start = broken.indexOf(sentence, from);
      if (start < 0) return sentence;
      from = start + sentence.length;
      return text.slice(originalAt(start), originalAt(from));
    },
  };
}

/**
 * English text analysis with wink-nlp and its English model (shipped inside the npm package):
 * sentences, lemmas, part-of-speech tags, stop words and sentiment.
 */
@Injectable()
export class TextAnalyzer {
  private readonly nlp = sharedNlp();

  /** Splits into sentences and finds each one's content words, topic candidates and sentiment. */
  analyze(text: string): MessageAnalysis {
    const { its } = this.nlp;
    // wink-nlp's typings reject `its.lemma` for tokens although it works on them.
    const lemmaOf = its.lemma as unknown as typeof its.normal;
    const sentences: AnalyzedSentence[] = [];

    const runs = breakLongRuns(text);
    this.nlp
      .readDoc(runs.broken)
      .sentences()
      .each((sentence: ItemSentence) => {
        // Whole-sentence reads are much cheaper than one read per token.
        const tokens = sentence.tokens();
        const normals = tokens.out(its.normal);
        const lemmas = tokens.out(lemmaOf);
        const tags = tokens.out(its.pos);
        const types = tokens.out(its.type);
        const stopWords = tokens.out(its.stopWordFlag) as unknown as boolean[];

        const terms: string[] = [];
        const topics: TopicCandidate[] = [];
        let run: number[] = [];
        // Every noun, and every compound of 2–3 nouns ending on one ("connection pool", "pool size").
        const closeRun = () => {
          run.forEach((_index, end) => {
            for (let start = Math.max(0, end - MAX_PHRASE_WORDS + 1); start <= end; start++) {
              const words = run.slice(start, end + 1);
              topics.push({
                key: words.map((i) => lemmas[i].toLowerCase()).join(' '),
                surface: words.map((i) => normals[i]).join(' '),
                words: words.length,
              });
            }
          });
          run = [];
        };
        normals.forEach((normal, i) => {
          const lemma = lemmas[i].toLowerCase();
          const content = types[i] === 'word' && !stopWords[i] && normal.length > 1 && !FILLER.has(lemma);
          if (content) terms.push(lemma);
          if (content && NOUNS.has(tags[i])) run.push(i);
          else closeRun();
        });
        closeRun();
        sentences.push({
          text: runs.originalOf(sentence.out()).trim(),
          terms,
          topics,
          sentiment: sentence.out(its.sentiment) as unknown as number,
        });
      });
    return { sentences };
  }
}
