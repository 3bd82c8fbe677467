/** What a caught value says, for a log line: an Error's message, or anything else as a string. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
