import { Logger } from '@nestjs/common';
import { Kysely, sql } from 'kysely';
import { Client, ClientConfig } from 'pg';
import type { DatabaseSchema } from '../sql/database-schema';
import { LeaseReleaseSignals } from '../sql/lease-release-signals';

/** The notification channels; their payload is the chat id. Channels are per database, not per schema. */
const CHANNEL = 'konko_chat_lease_released';
const STOP_CHANNEL = 'konko_turn_stop_requested';
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/**
 * How often the LISTEN connection is asked a trivial query, and how long it may take to answer.
 * A connection dropped on the way without a word (a firewall or NAT that forgot it: no FIN, no
 * RST) is otherwise never noticed, since it only ever receives; TCP keepalive (pg's `keepAlive`)
 * gives up only after the OS's probes, minutes, and never when a proxy on the way still answers.
 */
const HEARTBEAT_MS = 2_000;
const HEARTBEAT_TIMEOUT_MS = 3_000;

/**
 * Lease releases and stop requests announced with NOTIFY and heard on one dedicated LISTEN
 * connection (not from the pool, so no pooled connection is held while waiting). Polling is the
 * fallback: waiters look every `maxPollMs` anyway, in case a notification is lost, and while the
 * connection is down running turns look for stops as on SQLite. A heartbeat on the connection
 * finds it down when it went silent; no turn's statement checks it.
 */
export class PostgresLeaseReleaseSignals extends LeaseReleaseSignals {
  private readonly logger = new Logger('Storage');
  private client: Client | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private reconnectDelayMs = RECONNECT_MIN_MS;
  private closed = false;

  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly connection: ClientConfig,
    maxPollMs: number,
  ) {
    super(maxPollMs);
  }

  /** Connects the listener; a failure here stops start-up, later ones are retried. */
  async start(): Promise<void> {
    await this.listen();
  }

  override async announceRelease(chatId: string): Promise<void> {
    await sql`select pg_notify(${CHANNEL}, ${chatId})`.execute(this.db);
  }

  override async announceStop(chatId: string): Promise<void> {
    await sql`select pg_notify(${STOP_CHANNEL}, ${chatId})`.execute(this.db);
  }

  protected override get notifies(): boolean {
    return this.client !== undefined;
  }

  override async close(): Promise<void> {
    this.closed = true;
    await super.close();
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.heartbeatTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async listen(): Promise<void> {
    const client = new Client(this.connection);
    client.on('notification', ({ channel, payload }) => {
      if (!payload) return;
      if (channel === STOP_CHANNEL) this.stopAnnounced(payload);
      else this.wake(payload);
    });
    client.on('error', (error) => this.lost(client, error));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      await client.query(`LISTEN ${STOP_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
    this.reconnectDelayMs = RECONNECT_MIN_MS;
    this.heartbeat(client);
  }

  /** Asks the connection a trivial query every HEARTBEAT_MS: one not answered in time is lost. */
  private heartbeat(client: Client): void {
    this.heartbeatTimer = setTimeout(() => {
      const silent = setTimeout(
        () => this.lost(client, new Error(`no answer to a heartbeat within ${HEARTBEAT_TIMEOUT_MS} ms`)),
        HEARTBEAT_TIMEOUT_MS,
      );
      silent.unref();
      client.query('select 1').then(
        () => {
          clearTimeout(silent);
          if (this.client === client) this.heartbeat(client);
        },
        (error: Error) => {
          clearTimeout(silent);
          this.lost(client, error);
        },
      );
    }, HEARTBEAT_MS);
    this.heartbeatTimer.unref();
  }

  private lost(client: Client, error?: Error): void {
    if (this.closed || this.client !== client) return;
    this.client = undefined;
    clearTimeout(this.heartbeatTimer);
    // With the heartbeat still unanswered, pg destroys the socket rather than wait for its close.
    client.end().catch(() => undefined);
    // Stops announced meanwhile are not heard: running turns look for them until it is back.
    this.pollForStops();
    this.logger.warn(
      `Lost the lease notification connection${error ? ` (${error.message})` : ''}; polling until it is back`,
    );
    this.reconnectLater();
  }

  private reconnectLater(): void {
    this.reconnectTimer = setTimeout(() => {
      this.listen().then(
        // Announcements made while nobody listened were missed: every waiter and turn looks again.
        () => this.wakeAll(),
        () => {
          this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, RECONNECT_MAX_MS);
          this.reconnectLater();
        },
      );
    }, this.reconnectDelayMs);
    this.reconnectTimer.unref();
  }
}
