/** What a caught value says, for a log line: an Error's message, or anything else as a string. */
export function messageOf(error: unknown): string {
  // Node fails a connection to every address of a name as one AggregateError with no message.
  if (error instanceof AggregateError && error.message === '') return error.errors.map(messageOf).join('; ');
  return error instanceof Error ? error.message : String(error);
}
