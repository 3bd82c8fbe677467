import { TextAnalyzer } from '../../src/summaries/text-analyzer';

describe(TextAnalyzer.name, () => {
  const analyzer = new TextAnalyzer();

  it('should give sentences with long runs without white space as they were written', () => {
    const link = `https://example.com/${'a1b2c3/'.repeat(43)}end`;
    const emoji = '😀'.repeat(300);
    const text = `The refund link is ${link} today. Then came ${emoji} and nothing else.`;
    const { sentences } = analyzer.analyze(text);
    const texts = sentences.map((s) => s.text);
    expect(texts.join(' ')).toBe(text);
    expect(texts.every((t) => t.isWellFormed())).toBe(true);
    expect(sentences[0].terms).toContain('refund');
  });
});
