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

/** A page of a cursor-paged list, as every list of the API answers it (walkPages reads those). */
export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

/**
 * Every item of a cursor-paged list: those of `first`, then of each page `next` answers for the
 * cursor before it, in order. Throws once it has read `maxPages` pages and is still given a cursor,
 * so that a cursor that leads back or nowhere fails at once, naming it, rather than at jest's timeout.
 */
export async function walkPages<T>(
  first: Page<T>,
  next: (cursor: string) => Promise<Page<T>>,
  maxPages: number,
): Promise<T[]> {
  const items = [...first.data];
  let cursor = first.nextCursor;
  for (let read = 1; cursor !== null; read++) {
    if (typeof cursor !== 'string') throw new Error(`nextCursor is neither a string nor null: ${String(cursor)}`);
    if (read >= maxPages) throw new Error(`still a next page after ${maxPages} pages (nextCursor ${cursor})`);
    const page = await next(cursor);
    items.push(...page.data);
    cursor = page.nextCursor;
  }
  return items;
}
