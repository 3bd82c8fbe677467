/**
 * Reads a listing page by page until a page comes back shorter than `size`, each page asked for
 * after the last item of the one before (`cursorAfter`), and answers every item in order. It
 * gives up after `maxPages`, so a cursor that never moves on fails the test at once, saying so.
 */
export async function readAllPages<T, C>(
  what: string,
  { size, maxPages }: { size: number; maxPages: number },
  readPage: (cursor: C | undefined) => Promise<T[]>,
  cursorAfter: (last: T) => C,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: C | undefined;
  for (let pages = 0; pages < maxPages; pages++) {
    const page = await readPage(cursor);
    items.push(...page);
    if (page.length < size) return items;
    cursor = cursorAfter(page[page.length - 1]);
  }
  throw new Error(`${what} still had full pages of ${size} after ${maxPages} pages: does its cursor move on?`);
}
