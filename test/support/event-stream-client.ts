import { createParser } from 'eventsource-parser';

export interface ReceivedEvent {
  event: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  data: any;
  /** The event's `id:`, when it has one. */
  id?: string;
}

type Waiter = { test: () => boolean; resolve: () => void; reject: (error: Error) => void };

/**
 * Reads a `text/event-stream` response as it arrives, the way a browser or Node client would, so
 * tests can act between events (disconnect after the first delta, wait for a ping …).
 */
export class EventStreamClient {
  readonly events: ReceivedEvent[] = [];
  readonly comments: string[] = [];
  ended = false;
  private waiters: Waiter[] = [];
  private readonly done: Promise<void>;

  private constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {
    this.done = this.read();
  }

  /** POSTs `body` as JSON and starts reading the answer. */
  static async post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<EventStreamClient> {
    const controller = new AbortController();
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', ...headers },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    return new EventStreamClient(response, controller);
  }

  /** GETs a stream (a resume) and starts reading the answer. */
  static async get(url: string, headers: Record<string, string> = {}): Promise<EventStreamClient> {
    const controller = new AbortController();
    const response = await fetch(url, {
      headers: { Accept: 'text/event-stream', ...headers },
      signal: controller.signal,
    });
    return new EventStreamClient(response, controller);
  }

  /** Resolves once `count` events have arrived (rejects if the stream ends first). */
  waitForEvents(count: number): Promise<ReceivedEvent[]> {
    return this.waitFor(() => this.events.length >= count).then(() => this.events);
  }

  waitForComment(): Promise<string> {
    return this.waitFor(() => this.comments.length > 0).then(() => this.comments[0]);
  }

  /** Every event, once the server has ended the stream. */
  async all(): Promise<ReceivedEvent[]> {
    await this.done;
    return this.events;
  }

  /** Disconnects, as a client that closes the tab would. */
  disconnect(): void {
    this.controller.abort();
  }

  private waitFor(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    if (this.ended) return Promise.reject(new Error(`stream ended; events: ${JSON.stringify(this.events)}`));
    return new Promise((resolve, reject) => this.waiters.push({ test, resolve, reject }));
  }

  private settle(): void {
    this.waiters = this.waiters.filter((waiter) => {
      if (waiter.test()) waiter.resolve();
      else if (this.ended) waiter.reject(new Error(`stream ended; events: ${JSON.stringify(this.events)}`));
      else return true;
      return false;
    });
  }

  private async read(): Promise<void> {
    const parser = createParser({
      onEvent: ({ event, data, id }) =>
        this.events.push({ event: event ?? 'message', data: JSON.parse(data), ...(id === undefined ? {} : { id }) }),
      onComment: (comment) => this.comments.push(comment.trim()),
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of this.response.body ?? []) {
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        this.settle();
      }
    } catch {
      // Aborted by disconnect(), or the server cut the connection: both just end the stream.
    } finally {
      this.ended = true;
      this.settle();
    }
  }
}
