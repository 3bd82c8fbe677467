import { once } from 'node:events';
import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';

/**
 * A path to the shared PostgreSQL through a loopback port of its own, which a test uses to cut
 * one instance's notifications without touching the server others use: once its listeners are
 * cut, every connection that sends LISTEN is closed, the open ones at once and each new one as it
 * sends it, while the pool's connections go on as before. Listeners can also go silent instead,
 * as behind a firewall that forgot them. The whole link can go down too, and come back.
 */
export class PostgresLink {
  private readonly sockets = new Set<Socket>();
  /** The clients' connections that sent LISTEN. */
  private readonly listeners = new Set<Socket>();
  /** Both ends of the connections that pass nothing more. */
  private readonly silenced = new Set<Socket>();
  private readonly peers = new Map<Socket, Socket>();
  private listenersCut = false;

  private port = 0;

  private constructor(
    private readonly server: Server,
    private readonly target: URL,
  ) {}

  /** A link to the server `url` names, on a free port. */
  static async open(url: string): Promise<PostgresLink> {
    const server = createServer();
    const link = new PostgresLink(server, new URL(url));
    server.on('connection', (client) => link.join(client));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    link.port = (server.address() as AddressInfo).port;
    return link;
  }

  /** `url` (a database URL of the same server) through this link. */
  urlFor(url: string): string {
    const through = new URL(url);
    through.host = `127.0.0.1:${this.port}`;
    return through.toString();
  }

  /** PostgreSQL is down: connections are refused, and the open ones closed. */
  async cut(): Promise<void> {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** PostgreSQL is back, on the same port. */
  async restore(): Promise<void> {
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
  }

  /** The LISTEN connections are lost, and no new one can LISTEN; the others stay up. */
  cutListeners(): void {
    this.listenersCut = true;
    for (const socket of this.listeners) socket.destroy();
  }

  /**
   * The LISTEN connections open now pass nothing more either way, and neither end is told: no
   * FIN, no RST, as when a firewall or NAT drops an idle connection. New connections pass as before.
   */
  silenceListeners(): void {
    for (const socket of this.listeners) {
      this.silenced.add(socket);
      this.silenced.add(this.peers.get(socket)!);
    }
  }

  async close(): Promise<void> {
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private join(client: Socket): void {
    const upstream = connect(Number(this.target.port || 5432), this.target.hostname);
    this.peers.set(client, upstream);
    client.on('data', (chunk) => {
      if (!/LISTEN /.test(chunk.toString('latin1'))) return;
      this.listeners.add(client);
      if (this.listenersCut) client.destroy();
    });
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ]) {
      this.sockets.add(from);
      from.on('data', (chunk) => from.destroyed || this.silenced.has(from) || to.write(chunk));
      from.on('error', () => to.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        this.listeners.delete(from);
        this.silenced.delete(from);
        this.peers.delete(from);
        to.destroy();
      });
    }
  }
}
