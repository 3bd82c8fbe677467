import { Logger, OnModuleDestroy } from '@nestjs/common';
import Redis from 'ioredis';
import type { ChatLock } from '../../chats/chat.repository';
import { RelayUnavailableError } from '../../messages/message-errors';
import { isFinal, StreamedTurnEvent, TurnId } from '../../messages/turn';
import { decodeTurnEvent, encodeTurnEvent } from '../../messages/turn-event-codec';
import { parseTurnEventId, sameTurn, turnKeyOf } from '../../messages/turn-event-ids';
import { RelayedTurn, RunningElsewhere, TurnRelay } from '../../messages/turn-relay';

const STOP_CHANNEL = 'konko:turn-stop';
const runningKey = (chatId: string) => `konko:turn-running:${chatId}`;
const eventsKey = (turn: TurnId) => `konko:turn-events:${turnKeyOf(turn)}`;

/** Events are written at most this often while a turn runs (a final event at once, with the unmark). */
const FLUSH_MS = 20;
/** A turn's events outlive it this long in Redis, for resumes of its final event. */
const EVENTS_TTL_MS = 10 * 60_000;
/**
 * Each turn's stream keeps at least this many entries (each holds the events of one flush), and
 * more when a reply may have more deltas: trimming one that runs would lose its first events.
 */
const MIN_MAX_ENTRIES = 10_000;
/** A follower that hears nothing for this long checks that the turn's instance still runs it. */
const BLOCK_MS = 1_000;
/** A request (a stop, a resume) and the readiness probe wait this long at most for Redis's answer. */
const ANSWER_MS = 1_000;
/**
 * Appends a batch of a turn's events (KEYS[1]; ARGV[1], none when empty) to its capped stream and
 * renews the stream's TTL; with a mark (ARGV[4]) it then deletes the chat's running mark (KEYS[2])
 * while that still names this turn. One command, not four, for a turn's last write: the round trips
 * cost the instance more CPU than Redis's work.
 */
const APPEND_TURN_EVENTS = `
if ARGV[1] ~= '' then
  redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
  redis.call('pexpire', KEYS[1], ARGV[3])
end
if ARGV[4] ~= '' and redis.call('get', KEYS[2]) == ARGV[4] then redis.call('del', KEYS[2]) end
return 0`;

interface RelayCommands {
  appendTurnEvents(
    eventsKey: string,
    runningKey: string,
    batch: string,
    maxEntries: number,
    ttlMs: number,
    unmark: string,
  ): Promise<number>;
}

type Entry = [id: string, fields: string[]];

/**
 * Instances that share Redis (REDIS_URL): each running turn is marked under its chat (renewed
 * while it runs, so a crashed instance's mark lapses after CHAT_LOCK_LEASE_MS), its events go to
 * a Redis stream of its own (capped, and kept EVENTS_TTL_MS after its last write) that any
 * instance can follow for a resume, and stops are published to every instance. A turn runs on
 * while Redis is unreachable (its writes are logged as they fail); stops and resumes that need
 * Redis fail at once with RelayUnavailableError, and readiness reports Redis down.
 */
export class RedisTurnRelay extends TurnRelay implements OnModuleDestroy {
  private readonly logger = new Logger('Redis');
  readonly sharesEvents = true;
  override readonly dependency = 'redis';
  /** The last connection error, to say why Redis is unreachable. */
  private lastError = '';
  private readonly redis: Redis & RelayCommands;
  private readonly subscriber: Redis;
  /** Whether Redis has taken the subscription to stops (ioredis renews it after a reconnection). */
  private subscribed = false;
  /** The stop of each chat's turn that this instance runs. */
  private readonly stops = new Map<string, () => void>();

  /** A turn writes its user message, a delta of at least a token at a time, and a final event. */
  private readonly maxEntries: number;

  constructor(
    url: string,
    private readonly leaseMs: number,
    maxOutputTokens: number,
  ) {
    super();
    this.maxEntries = Math.max(MIN_MAX_ENTRIES, maxOutputTokens + 16);
    // Commands issued in one pass of the event loop go to Redis in one write.
    this.redis = new Redis(url, {
      enableAutoPipelining: true,
      lazyConnect: false,
      scripts: { appendTurnEvents: { lua: APPEND_TURN_EVENTS, numberOfKeys: 2 } },
    }) as Redis & RelayCommands;
    this.redis.on('error', (error) => {
      this.lastError = error.message;
      this.logger.warn(`Redis: ${error.message}`);
    });
    // ioredis renews only a subscription Redis has taken: by default it gives up the command
    // after ~10 s of reconnecting, and this instance would never hear a stop. It waits instead.
    this.subscriber = this.redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null });
    this.subscriber.on('error', (error) => {
      this.lastError = error.message;
      this.logger.warn(`Redis subscriber: ${error.message}`);
    });
    this.subscriber.on('message', (_channel: string, chatId: string) => this.stops.get(chatId)?.());
    this.subscriber.subscribe(STOP_CHANNEL).then(
      () => (this.subscribed = true),
      (error: Error) => this.logger.warn(`Could not subscribe to stop requests: ${error.message}`),
    );
  }

  begin(lock: ChatLock, stop: () => void): RelayedTurn {
    this.stops.set(lock.chatId, stop);
    let turn: TurnId | null = null;
    let pending: StreamedTurnEvent[] = [];
    let flushTimer: NodeJS.Timeout | undefined;
    let mark = '';
    let renewal: NodeJS.Timeout | undefined;
    /** Writes the pending events; `unmark` also deletes the running mark, after them. */
    const flush = (unmark = false) => {
      clearTimeout(flushTimer);
      flushTimer = undefined;
      if (pending.length === 0 && !(unmark && turn)) return;
      // Before the turn has a name, its one event (a failure) names it.
      const key = eventsKey(turn ?? parseTurnEventId(pending[0].id)!);
      const batch = pending.length > 0 ? JSON.stringify(pending.map(encodeTurnEvent)) : '';
      pending = [];
      this.redis
        .appendTurnEvents(key, runningKey(lock.chatId), batch, this.maxEntries, EVENTS_TTL_MS, unmark ? mark : '')
        .catch(this.warn(unmark ? 'publish events and unmark a running turn' : 'publish events'));
    };
    return {
      identify: (id) => {
        turn = id;
        mark = JSON.stringify(id);
        this.redis.set(runningKey(lock.chatId), mark, 'PX', this.leaseMs).catch(this.warn('mark a running turn'));
        renewal = setInterval(() => {
          this.redis.pexpire(runningKey(lock.chatId), this.leaseMs).catch(this.warn('renew a running turn'));
        }, this.leaseMs / 3);
        renewal.unref();
      },
      publish: (event) => {
        pending.push(event);
        // A final event waits for `end`, which follows it within the same pass of the event loop,
        // to go with the unmark in one command.
        if (!isFinal(event)) flushTimer ??= setTimeout(flush, FLUSH_MS);
      },
      end: () => {
        clearInterval(renewal);
        if (this.stops.get(lock.chatId) === stop) this.stops.delete(lock.chatId);
        flush(true);
      },
    };
  }

  override async checkReachable(): Promise<void> {
    await this.answered(() => this.redis.ping());
    if (!this.subscribed || this.subscriber.status !== 'ready') {
      throw new Error(`not subscribed to stop requests (${this.lastError || this.subscriber.status})`);
    }
  }

  async requestStop(chatId: string): Promise<boolean> {
    if ((await this.answer(() => this.redis.exists(runningKey(chatId)))) === 0) return false;
    await this.answer(() => this.redis.publish(STOP_CHANNEL, chatId));
    return true;
  }

  async runningTurn(chatId: string): Promise<RunningElsewhere | null> {
    const mark = await this.answer(() => this.redis.get(runningKey(chatId)));
    return mark === null ? null : { turn: JSON.parse(mark) as TurnId };
  }

  async follow(
    chatId: string,
    turn: TurnId,
    afterIndex: number,
    signal: AbortSignal,
  ): Promise<AsyncIterable<StreamedTurnEvent> | null> {
    const entries = (await this.answer(() => this.redis.xrange(eventsKey(turn), '-', '+'))) as Entry[];
    if (entries.length === 0 && !(await this.runs(chatId, turn))) return null;
    return this.followStream(chatId, turn, afterIndex, entries, signal);
  }

  private async *followStream(
    chatId: string,
    turn: TurnId,
    afterIndex: number,
    entries: Entry[],
    signal: AbortSignal,
  ): AsyncGenerator<StreamedTurnEvent> {
    const written = entries.flatMap(decodeEntry);
    const final = written.find(isFinal);
    if (final) {
      yield final; // an ended turn: its final event only
      return;
    }
    const after = (event: StreamedTurnEvent) => parseTurnEventId(event.id)!.index > afterIndex;
    yield* written.filter(after);
    let lastId = entries.at(-1)?.[0] ?? '0-0';
    // A blocking read holds its connection: each follower has its own, closed when it stops.
    const reader = this.redis.duplicate({ enableAutoPipelining: false });
    reader.on('error', () => undefined);
    const leave = () => reader.disconnect();
    signal.addEventListener('abort', leave);
    try {
      while (!signal.aborted) {
        const read = (await reader.xread('BLOCK', BLOCK_MS, 'STREAMS', eventsKey(turn), lastId).catch(() => null)) as
          [string, Entry[]][] | null;
        if (signal.aborted) return;
        const fresh = read?.[0]?.[1] ?? [];
        if (fresh.length === 0) {
          if (await this.runs(chatId, turn)) continue;
          // Its instance let go of it (or died): whatever it wrote last, and no more.
          fresh.push(...((await this.answer(() => this.redis.xrange(eventsKey(turn), `(${lastId}`, '+'))) as Entry[]));
          for (const event of fresh.flatMap(decodeEntry).filter(after)) {
            yield event;
            if (isFinal(event)) return;
          }
          return;
        }
        lastId = fresh[fresh.length - 1][0];
        for (const event of fresh.flatMap(decodeEntry).filter(after)) {
          yield event;
          if (isFinal(event)) return;
        }
      }
    } finally {
      signal.removeEventListener('abort', leave);
      reader.disconnect();
    }
  }

  private async runs(chatId: string, turn: TurnId): Promise<boolean> {
    const mark = await this.answer(() => this.redis.get(runningKey(chatId)));
    return mark !== null && sameTurn(JSON.parse(mark) as TurnId, turn);
  }

  /** A command a request waits on: {@link answered}, or RelayUnavailableError. */
  private async answer<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await this.answered(command);
    } catch (error) {
      throw new RelayUnavailableError({ cause: error });
    }
  }

  /**
   * Redis's answer to `command`. While the client reconnects, ioredis would hold the command for
   * up to ~40 s of retries before failing it: it is not sent then, and an answer that takes longer
   * than ANSWER_MS (Redis hangs) is not waited for.
   */
  private async answered<T>(command: () => Promise<T>): Promise<T> {
    if (this.redis.status !== 'ready') throw new Error(this.lastError || `not connected (${this.redis.status})`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_MS} ms`)), ANSWER_MS);
    });
    try {
      return await Promise.race([command(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private warn(what: string) {
    return (error: Error) => this.logger.warn(`Could not ${what}: ${error.message}`);
  }

  async onModuleDestroy(): Promise<void> {
    // QUIT waits for Redis to answer: while it is unreachable that held shutdown ~10 s, and the
    // client went on reconnecting after. Without a connection there is nothing to flush.
    const close = (client: Redis) => (client.status === 'ready' ? client.quit() : client.disconnect());
    await Promise.allSettled([close(this.subscriber), close(this.redis)]);
  }
}

function decodeEntry([, fields]: Entry): StreamedTurnEvent[] {
  const batch = fields[fields.indexOf('e') + 1];
  return (JSON.parse(batch) as Parameters<typeof decodeTurnEvent>[0][]).map(decodeTurnEvent);
}
