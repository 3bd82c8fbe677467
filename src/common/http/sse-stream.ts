import type { Response } from 'express';

/**
 * A `text/event-stream` response. Each event is an `id:` line when it has one, an `event:` line
 * and one `data:` line of JSON (JSON never holds a raw newline, so no data splitting is needed).
 * While nothing is sent for `pingIntervalMs`, a `: ping` comment keeps proxies and clients from
 * timing the stream out.
 */
export class SseStream {
  private pingTimer: NodeJS.Timeout | undefined;
  private headerFlush: NodeJS.Immediate | undefined;
  private opened = false;

  constructor(
    private readonly response: Response,
    private readonly pingIntervalMs: number,
  ) {}

  /** Whether `open` ran: before, the response is still free for a plain answer. */
  get isOpen(): boolean {
    return this.opened;
  }

  open(): void {
    this.opened = true;
    this.response.status(200);
    this.response.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    this.response.setHeader('Cache-Control', 'no-cache, no-transform');
    // Stops nginx and similar proxies from buffering the stream.
    this.response.setHeader('X-Accel-Buffering', 'no');
    // The headers leave with the first event when it is written at once (on loopback every write
    // costs a round through the receiver's network stack), or on the next pass of the event loop
    // when the turn has to wait.
    this.headerFlush = setImmediate(() => {
      if (!this.response.headersSent && !this.response.destroyed) this.response.flushHeaders();
    });
    this.pingTimer = setTimeout(() => this.ping(), this.pingIntervalMs);
  }

  send(event: string, data: unknown, id?: string): void {
    const idLine = id === undefined ? '' : `id: ${id}\n`;
    this.write(`${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Whether the client is gone: nothing sent now reaches it. */
  get isClosed(): boolean {
    return this.response.writableEnded || this.response.destroyed;
  }

  close(): void {
    if (!this.opened) return;
    clearImmediate(this.headerFlush);
    clearTimeout(this.pingTimer);
    if (!this.response.writableEnded) this.response.end();
  }

  private ping(): void {
    this.write(': ping\n\n');
  }

  private write(chunk: string): void {
    if (this.isClosed) return;
    clearImmediate(this.headerFlush);
    this.response.write(chunk);
    this.pingTimer?.refresh();
  }
}
