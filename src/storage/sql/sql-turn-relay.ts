import { Logger } from '@nestjs/common';
import { sql } from 'kysely';
import type { ChatLock } from '../../chats/chat.repository';
import { RelayedTurn, RunningElsewhere, TurnRelay } from '../../messages/turn-relay';
import type { SqlDatabase } from './sql-database';

/**
 * Instances that share a database and no Redis: a stop requested on any of them marks the lease
 * of the chat's running turn, and the instance holding it looks at its mark when the stop is
 * announced (PostgreSQL NOTIFY) or every quarter of a second (SQLite, and PostgreSQL while its
 * LISTEN connection is down). Events stay with the instance that runs the turn, so a resume
 * elsewhere gets 409.
 */
export class SqlTurnRelay extends TurnRelay {
  private readonly logger = new Logger('Storage');
  readonly sharesEvents = false;

  constructor(private readonly database: SqlDatabase) {
    super();
  }

  private get db() {
    return this.database.db;
  }

  begin(lock: ChatLock, stop: () => void): RelayedTurn {
    let stopped = false;
    const check = () => {
      if (stopped) return;
      this.stopRequested(lock).then(
        (requested) => {
          if (!requested || stopped) return;
          stopped = true;
          stop();
        },
        (error: unknown) => this.logger.warn(`Could not look for a stop of chat ${lock.chatId}: ${String(error)}`),
      );
    };
    const unwatch = this.database.releaseSignals.watchForStop(lock.chatId, check);
    return {
      identify: () => undefined,
      publish: () => undefined,
      end: () => {
        stopped = true;
        unwatch();
      },
    };
  }

  async requestStop(chatId: string): Promise<boolean> {
    const marked = await this.db
      .updateTable('chat_leases')
      .set({ stop_requested: this.database.dialect.name === 'postgres' ? true : 1 })
      .where('chat_id', '=', chatId)
      .where('expires_at', '>', this.database.dialect.nowMs)
      .returning('owner')
      .executeTakeFirst();
    if (!marked) return false;
    await this.database.releaseSignals.announceStop(chatId);
    return true;
  }

  async runningTurn(chatId: string): Promise<RunningElsewhere | null> {
    const held = await this.db
      .selectFrom('chat_leases')
      .select('owner')
      .where('chat_id', '=', chatId)
      .where('expires_at', '>', this.database.dialect.nowMs)
      .executeTakeFirst();
    return held ? { turn: null } : null;
  }

  async follow(): Promise<null> {
    return null;
  }

  private async stopRequested({ chatId, holder }: ChatLock): Promise<boolean> {
    const { rows } = await sql<{ stop_requested: boolean | number }>`
      select stop_requested from chat_leases where chat_id = ${chatId} and owner = ${holder}`.execute(this.db);
    return Boolean(rows[0]?.stop_requested);
  }
}
