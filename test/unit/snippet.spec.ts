import { LONGEST_STEMMED_WORD, searchTermsOf } from '../../src/search/search-terms';
import { snippetOf } from '../../src/search/snippet';

const matchedWords = ({ text, matches }: { text: string; matches: [number, number][] }) =>
  matches.map(([start, end]) => text.slice(start, end));

describe(snippetOf.name, () => {
  it('should give a short message whole, with the offsets of every matched word, by stem and any case', () => {
    const snippet = snippetOf('Refunds take days; the REFUND for 1042 was refunded.', searchTermsOf('refund 1042'));
    expect(snippet.text).toBe('Refunds take days; the REFUND for 1042 was refunded.');
    expect(matchedWords(snippet)).toEqual(['Refunds', 'REFUND', '1042', 'refunded']);
  });

  it('should cut a long message around its first match at word boundaries, marking the cuts', () => {
    const before = 'word '.repeat(60);
    const after = ' more'.repeat(60);
    const snippet = snippetOf(`${before}the carrier lost the parcel${after}`, ['parcel']);
    expect(snippet.text.startsWith('…word ')).toBe(true);
    expect(snippet.text.endsWith(' more…')).toBe(true);
    expect(snippet.text.length).toBeLessThanOrEqual(162);
    expect(matchedWords(snippet)).toEqual(['parcel']);
    expect(snippet.text).toContain('the carrier lost the parcel');
  });

  it('should count offsets in UTF-16 code units, as JavaScript strings do', () => {
    const snippet = snippetOf('🚀🚀 café déjà vu: le café 🚀', ['café']);
    expect(snippet.matches).toEqual([
      [5, 9],
      [22, 26],
    ]);
    expect(matchedWords(snippet)).toEqual(['café', 'café']);
  });

  it('should match a word longer than stems are worked out for only as written', () => {
    const long = 'ab'.repeat(LONGEST_STEMMED_WORD / 2);
    const content = `refund ${long}ing`;
    expect(matchedWords(snippetOf(content, searchTermsOf(`${long}ing`)))).toEqual([`${long}ing`]);
    expect(snippetOf(content, searchTermsOf(long)).matches).toEqual([]);
  });

  it('should show the start with no matches when no word matches by this stemmer', () => {
    expect(snippetOf('Nothing alike here', ['elephant'])).toEqual({ text: 'Nothing alike here', matches: [] });
  });
});
