import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { TokenCounter } from '../../src/llm/token-counter';

describe(TokenCounter.name, () => {
  const counter = new TokenCounter();

  it('should count ordinary text exactly as the o200k_base tokenizer does', () => {
    const text = 'Hello! How many tokens are in this sentence, do you think? Ünïcödé and 数字 too.';
    expect(counter.count(text)).toBe(countTokens(text));
    expect(counter.count('')).toBe(0);
  });

  it('should count a long unbroken run close to the exact figure, never under it', () => {
    const run = `start ${'abcdefghij'.repeat(100)} end`;
    const exact = countTokens(run);
    expect(counter.count(run)).toBeGreaterThanOrEqual(exact);
    expect(counter.count(run)).toBeLessThanOrEqual(exact * 1.05 + 4);
  });
});
