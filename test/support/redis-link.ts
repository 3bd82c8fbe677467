import { once } from 'node:events';
import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';

/** The Redis the tests share. */
const REDIS = { host: '127.0.0.1', port: 6379 };

/**
 * A path to the shared Redis through a loopback port of its own, which a test cuts and restores
 * to play a Redis outage without touching the Redis others use: while cut, nothing listens on the
 * port (a connection is refused) and the open connections are closed, as when Redis goes down;
 * while frozen, connections stay open and nothing passes, as when Redis hangs.
 */
export class RedisLink {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /** The clients' connections that subscribed to a channel. */
  private readonly subscribers = new Set<Socket>();
  private frozen = false;

  private constructor(
    private readonly port: number,
    private readonly db: number,
  ) {
    this.server = createServer((client) => this.join(client));
  }

  /** A link to database `db` of the shared Redis, up (or cut, with `up: false`) on a free port. */
  static async open(db: number, { up = true }: { up?: boolean } = {}): Promise<RedisLink> {
    const probe = createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const link = new RedisLink(port, db);
    if (up) await link.restore();
    return link;
  }

  /** The URL a service reaches Redis by, through this link. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}/${this.db}`;
  }

  /** Redis is down: connections are refused, and the open ones closed. */
  async cut(): Promise<void> {
    this.frozen = false;
    const closed = this.server.listening ? new Promise((resolve) => this.server.close(resolve)) : undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.subscribers.clear();
    await closed;
  }

  /** Redis is back, on the same port. */
  async restore(): Promise<void> {
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  /** Redis drops the connections that subscribed to a channel, and takes no new one; the others stay up. */
  cutSubscribers(): void {
    this.server.close();
    for (const socket of this.subscribers) socket.destroy();
  }

  /** Redis hangs: connections stay open and nothing passes either way, until {@link cut}. */
  freeze(): void {
    this.frozen = true;
  }

  close(): Promise<void> {
    return this.cut();
  }

  private join(client: Socket): void {
    const upstream = connect(REDIS.port, REDIS.host);
    client.on('data', (chunk) => /subscribe/i.test(chunk.toString('latin1')) && this.subscribers.add(client));
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ]) {
      this.sockets.add(from);
      from.on('data', (chunk) => this.frozen || to.write(chunk));
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        this.subscribers.delete(from);
        to.destroy();
      });
    }
  }
}
