import { Chat } from '../chats/chat';
import { Message, MessageRole } from '../chats/message';
import { ChatSummary, Sentiment } from './summary';
import { MessageAnalysis } from './text-analyzer';

export const MAX_HIGHLIGHTS = 5;
export const MAX_TOPICS = 10;
/** Mean sentence sentiment beyond ±0.1 reads as positive or negative; closer to 0 as neutral. */
const SENTIMENT_THRESHOLD = 0.1;
/** Sentences with fewer distinct content words say too little to stand for the chat. */
const MIN_HIGHLIGHT_TERMS = 3;
/** A compound ("connection pool") is more telling than each of its words. */
const PHRASE_BONUS = 0.5;
/** Highlight candidates kept per chat; the pool is rescored and cut back when it doubles. */
const CANDIDATE_POOL = 250;
/**
 * What a string costs beside its characters, a map entry or an object beside its strings, and an
 * empty digest (V8 needs about 1,000 bytes). With characters counted as two bytes, digests of
 * English text measured about 0.6 of what these count.
 */
const STRING_BYTES = 16;
const ENTRY_BYTES = 64;
const EMPTY_DIGEST_BYTES = 1_024;

interface Candidate {
  messageId: string;
  role: MessageRole;
  order: number;
  text: string;
  terms: string[];
}

/**
 * Bumped whenever the digest's fields or what the analyzer extracts change: a stored digest of
 * another version is ignored and rebuilt from the messages. 2: version 1's summaries cut the
 * candidate pool, so its pools depend on when the chat was read.
 */
const SNAPSHOT_VERSION = 2;

/** A digest as JSON: the maps as entry lists, times as epoch milliseconds. */
interface Snapshot {
  version: number;
  lastSeq: number;
  messageCount: number;
  userMessageCount: number;
  tokenCount: number;
  firstMessageAt: number | null;
  lastMessageAt: number | null;
  sentiment: Record<MessageRole, { sum: number; count: number }>;
  topics: [string, string, number, number][];
  termFrequency: [string, number][];
  sentenceFrequency: [string, number][];
  sentenceCount: number;
  candidates: [string, MessageRole, number, string, string[]][];
}

const round = (value: number) => Math.round(value * 1000) / 1000;

/**
 * Roughly the memory of an entry holding the strings `texts`, counted high: two bytes a
 * character, though V8 keeps most text in one.
 */
const entryBytes = (...texts: string[]) =>
  texts.reduce((bytes, text) => bytes + STRING_BYTES + 2 * text.length, ENTRY_BYTES);

/** A candidate: its text (in `candidateTexts` too) and its terms. */
const candidateBytes = ({ text, terms }: Candidate) => entryBytes(text, ...terms);

function sentimentOf({ sum, count }: { sum: number; count: number }): Sentiment {
  const score = count === 0 ? 0 : round(sum / count);
  const label = score >= SENTIMENT_THRESHOLD ? 'positive' : score <= -SENTIMENT_THRESHOLD ? 'negative' : 'neutral';
  return { score, label };
}

/**
 * Everything a chat's summary is made of, folded in one message at a time, so a summary after a
 * new message only analyses that message. Exact for counts, topics and sentiment; highlights
 * are the best of a bounded pool of candidate sentences, which is exact until a chat has more
 * than 2 × 250 candidate sentences and a close approximation after.
 */
export class ChatDigest {
  /** The last message folded in; the next fold starts after it. */
  lastSeq = 0;
  private messageCount = 0;
  private userMessageCount = 0;
  private tokenCount = 0;
  private firstMessageAt: Date | null = null;
  private lastMessageAt: Date | null = null;
  private readonly sentiment: Record<MessageRole, { sum: number; count: number }> = {
    user: { sum: 0, count: 0 },
    assistant: { sum: 0, count: 0 },
  };
  private readonly topics = new Map<string, { surface: string; words: number; count: number }>();
  private readonly termFrequency = new Map<string, number>();
  private readonly sentenceFrequency = new Map<string, number>();
  private sentenceCount = 0;
  private candidates: Candidate[] = [];
  /** The candidates' texts: a sentence said again (a greeting, a stock reply) adds no candidate. */
  private candidateTexts = new Set<string>();
  /** What all the above hold, roughly: see {@link ChatDigest.size}. */
  private bytes = EMPTY_DIGEST_BYTES;

  add(message: Message, analysis: MessageAnalysis): void {
    this.lastSeq = message.seq;
    this.messageCount += 1;
    if (message.role === 'user') this.userMessageCount += 1;
    this.tokenCount += message.tokenCount;
    this.firstMessageAt ??= new Date(message.createdAt);
    this.lastMessageAt = new Date(message.createdAt);

    for (const sentence of analysis.sentences) {
      this.sentenceCount += 1;
      const sentiment = this.sentiment[message.role];
      sentiment.sum += sentence.sentiment;
      sentiment.count += 1;
      for (const topic of sentence.topics) {
        const seen = this.topics.get(topic.key);
        if (seen) seen.count += 1;
        else {
          this.topics.set(topic.key, { surface: topic.surface, words: topic.words, count: 1 });
          this.bytes += entryBytes(topic.key, topic.surface);
        }
      }
      for (const term of sentence.terms) this.countIn(this.termFrequency, term);
      const distinct = [...new Set(sentence.terms)];
      for (const term of distinct) this.countIn(this.sentenceFrequency, term);
      if (distinct.length >= MIN_HIGHLIGHT_TERMS && !this.candidateTexts.has(sentence.text)) {
        const candidate = {
          messageId: message.id,
          role: message.role,
          order: this.sentenceCount,
          text: sentence.text,
          terms: distinct,
        };
        this.candidateTexts.add(candidate.text);
        this.candidates.push(candidate);
        this.bytes += candidateBytes(candidate);
        if (this.candidates.length >= 2 * CANDIDATE_POOL) this.pruneCandidates();
      }
    }
  }

  /**
   * Roughly the bytes of memory the digest holds, to bound what digests a process keeps: its
   * candidate sentences' text above all (a sentence may be as long as a message), then its terms.
   */
  get size(): number {
    return this.bytes;
  }

  /** Counts `term` once more in `counts`. */
  private countIn(counts: Map<string, number>, term: string): void {
    const count = counts.get(term);
    if (count === undefined) this.bytes += entryBytes(term);
    counts.set(term, (count ?? 0) + 1);
  }

  /** The digest as one JSON text, to store and restore with {@link ChatDigest.fromSnapshot}. */
  toSnapshot(): string {
    const snapshot: Snapshot = {
      version: SNAPSHOT_VERSION,
      lastSeq: this.lastSeq,
      messageCount: this.messageCount,
      userMessageCount: this.userMessageCount,
      tokenCount: this.tokenCount,
      firstMessageAt: this.firstMessageAt?.getTime() ?? null,
      lastMessageAt: this.lastMessageAt?.getTime() ?? null,
      sentiment: this.sentiment,
      topics: [...this.topics].map(([key, t]) => [key, t.surface, t.words, t.count]),
      termFrequency: [...this.termFrequency],
      sentenceFrequency: [...this.sentenceFrequency],
      sentenceCount: this.sentenceCount,
      candidates: this.candidates.map((c) => [c.messageId, c.role, c.order, c.text, c.terms]),
    };
    return JSON.stringify(snapshot);
  }

  /** The digest a snapshot describes; null when it is of another version (rebuild it then). */
  static fromSnapshot(json: string): ChatDigest | null {
    const snapshot = JSON.parse(json) as Snapshot;
    if (snapshot.version !== SNAPSHOT_VERSION) return null;
    const digest = new ChatDigest();
    digest.lastSeq = snapshot.lastSeq;
    digest.messageCount = snapshot.messageCount;
    digest.userMessageCount = snapshot.userMessageCount;
    digest.tokenCount = snapshot.tokenCount;
    digest.firstMessageAt = snapshot.firstMessageAt === null ? null : new Date(snapshot.firstMessageAt);
    digest.lastMessageAt = snapshot.lastMessageAt === null ? null : new Date(snapshot.lastMessageAt);
    Object.assign(digest.sentiment.user, snapshot.sentiment.user);
    Object.assign(digest.sentiment.assistant, snapshot.sentiment.assistant);
    for (const [key, surface, words, count] of snapshot.topics) {
      digest.topics.set(key, { surface, words, count });
      digest.bytes += entryBytes(key, surface);
    }
    for (const [term, count] of snapshot.termFrequency) {
      digest.termFrequency.set(term, count);
      digest.bytes += entryBytes(term);
    }
    for (const [term, count] of snapshot.sentenceFrequency) {
      digest.sentenceFrequency.set(term, count);
      digest.bytes += entryBytes(term);
    }
    digest.sentenceCount = snapshot.sentenceCount;
    digest.candidates = snapshot.candidates.map(([messageId, role, order, text, terms]) => ({
      messageId,
      role,
      order,
      text,
      terms,
    }));
    digest.candidateTexts = new Set(digest.candidates.map((c) => c.text));
    for (const candidate of digest.candidates) digest.bytes += candidateBytes(candidate);
    return digest;
  }

  summary(chat: Chat): ChatSummary {
    const all = {
      sum: this.sentiment.user.sum + this.sentiment.assistant.sum,
      count: this.sentiment.user.count + this.sentiment.assistant.count,
    };
    return {
      chatId: chat.id,
      title: chat.title,
      messageCount: this.messageCount,
      userMessageCount: this.userMessageCount,
      assistantMessageCount: this.messageCount - this.userMessageCount,
      tokenCount: this.tokenCount,
      firstMessageAt: this.firstMessageAt,
      lastMessageAt: this.lastMessageAt,
      highlights: this.highlights(),
      topics: this.rankTopics(),
      sentiment: {
        ...sentimentOf(all),
        byRole: { user: sentimentOf(this.sentiment.user), assistant: sentimentOf(this.sentiment.assistant) },
      },
    };
  }

  /**
   * Cuts the pool back to its best. Only a fold does, when the pool doubles: at the same message
   * whenever and however often the chat is summarized, so a summary depends on the messages alone.
   */
  private pruneCandidates(): void {
    const ranked = this.rankCandidates();
    for (const dropped of ranked.slice(CANDIDATE_POOL)) this.bytes -= candidateBytes(dropped);
    this.candidates = ranked.slice(0, CANDIDATE_POOL);
    this.candidateTexts = new Set(this.candidates.map((c) => c.text));
  }

  /**
   * The candidates best first, by TF-IDF sentence scoring: a term weighs its frequency in the chat
   * times its inverse sentence frequency; a sentence scores the sum of its distinct terms' weights
   * over the square root of their number, so long sentences do not win by length alone.
   */
  private rankCandidates(): Candidate[] {
    return this.candidates
      .map((candidate) => {
        let score = 0;
        for (const term of candidate.terms) {
          score +=
            (this.termFrequency.get(term) ?? 0) *
            Math.log(1 + this.sentenceCount / (this.sentenceFrequency.get(term) ?? 1));
        }
        return { candidate, score: score / Math.sqrt(candidate.terms.length) };
      })
      .sort((a, b) => b.score - a.score || a.candidate.order - b.candidate.order)
      .map(({ candidate }) => candidate);
  }

  private highlights(): ChatSummary['highlights'] {
    return this.rankCandidates()
      .slice(0, MAX_HIGHLIGHTS)
      .sort((a, b) => a.order - b.order)
      .map(({ messageId, role, text }) => ({ messageId, role, text }));
  }

  /**
   * Nouns and compounds by frequency, compounds weighted up. A term that only ever appears inside
   * a better-ranked compound ("size" in "pool size") is left out.
   */
  private rankTopics(): ChatSummary['topics'] {
    const ranked = [...this.topics.entries()]
      .map(([key, c]) => ({ key, ...c, score: c.count * (1 + PHRASE_BONUS * (c.words - 1)) }))
      .sort((a, b) => b.score - a.score || b.words - a.words || a.key.localeCompare(b.key));
    const kept: typeof ranked = [];
    for (const candidate of ranked) {
      if (kept.length === MAX_TOPICS) break;
      const subsumed = kept.some(
        (better) =>
          better.words > candidate.words &&
          ` ${better.key} `.includes(` ${candidate.key} `) &&
          candidate.count <= better.count,
      );
      if (!subsumed) kept.push(candidate);
    }
    const top = kept[0]?.score ?? 1;
    return kept.map((c) => ({ term: c.surface, score: round(c.score / top) }));
  }
}
