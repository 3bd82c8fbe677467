/**
 * Text every storage keeps exactly as it is: PostgreSQL refuses U+0000 and lone surrogates (which
 * `JSON.parse` lets through from `\udc00`), and SQLite turns the latter into U+FFFD. A request
 * holding either is refused; text the LLM wrote is mended instead.
 */

/** What keeps `text` from being stored as it is, as a field error's words; null when nothing does. */
export function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'must not contain U+0000 (NUL)';
  if (!text.isWellFormed()) return 'must be well-formed Unicode (it holds a lone surrogate)';
  return null;
}

/** `text` with each U+0000 and lone surrogate replaced by U+FFFD, as a decoder marks bad input. */
export function storableText(text: string): string {
  if (textProblem(text) === null) return text;
  return text.toWellFormed().replaceAll('\u0000', '\uFFFD');
}
