import type { LoggerService } from '@nestjs/common';
import type { Sql } from 'postgres';
import { LeaseReleaseSignals } from '../sql/lease-release-signals';

/** The notification channel; its payload is the chat id. Channels are per database, not per schema. */
const CHANNEL = 'konko_chat_lease_released';

/**
 * Lease releases announced with NOTIFY and heard with LISTEN, on the dedicated connection
 * postgres.js keeps for listening (not one of the pool's, so none is held while waiting) and
 * listens again on after it was lost. Polling stays on as the fallback: while the connection is
 * down, or if a notification is lost, waiters still look every `maxPollMs`.
 */
export class PostgresLeaseReleaseSignals extends LeaseReleaseSignals {
  private listening: { unlisten(): Promise<void> } | undefined;

  constructor(
    private readonly sql: Sql,
    maxPollMs: number,
    private readonly logger: LoggerService,
  ) {
    super(maxPollMs);
  }

  /** Listens; a failure here stops start-up. */
  async start(): Promise<void> {
    let connectedBefore = false;
    this.listening = await this.sql.listen(
      CHANNEL,
      (chatId) => this.wake(chatId),
      () => {
        // Releases announced while nobody listened were missed: every waiter looks again.
        if (connectedBefore) {
          this.logger.log('Listening for lease releases again');
          this.wakeAll();
        }
        connectedBefore = true;
      },
    );
  }

  override async announceRelease(chatId: string): Promise<void> {
    await this.sql.notify(CHANNEL, chatId);
  }

  override async close(): Promise<void> {
    await this.listening?.unlisten().catch(() => undefined);
    this.listening = undefined;
  }
}
