import { Injectable } from '@nestjs/common';
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';

/** Byte-pair merging is quadratic in the length of one unbroken run of characters. */
const LONG_RUN = /\S{256,}/g;
const RUN_CHUNK = 256;

/**
 * Counts tokens with the o200k_base encoding of current OpenAI models. For other models it is
 * a close estimate, which is all a context budget needs.
 */
@Injectable()
export class TokenCounter {
  /** Chat formatting adds a few tokens per message (role and separators). */
  static readonly MESSAGE_OVERHEAD = 3;
  /** Every reply is primed with a few tokens too. */
  static readonly REPLY_PRIMING = 3;

  /**
   * Exact for ordinary text. Runs of 256+ non-space characters (a pasted blob, CJK prose) are
   * counted in chunks, which overestimates by a token or so per chunk but keeps a 32,000-char
   * message from blocking the event loop for seconds.
   */
  count(text: string): number {
    let total = 0;
    let from = 0;
    for (const run of text.matchAll(LONG_RUN)) {
      total += countTokens(text.slice(from, run.index));
      for (let at = 0; at < run[0].length; at += RUN_CHUNK) total += countTokens(run[0].slice(at, at + RUN_CHUNK));
      from = run.index + run[0].length;
    }
    return total + countTokens(text.slice(from));
  }
}
