/**
 * What a caught value says, for a log line: an Error's message (with its cause's, which a domain
 * error's client-facing message leaves out), or anything else as a string.
 */
export function messageOf(error: unknown): string {
  // Node fails a connection to every address of a name as one AggregateError with no message.
  if (error instanceof AggregateError && error.message === '') return error.errors.map(messageOf).join('; ');
  if (!(error instanceof Error)) return String(error);
  return error.cause === undefined ? error.message : `${error.message} (${messageOf(error.cause)})`;
}
