import { Logger, OnModuleDestroy } from '@nestjs/common';
import Redis, { ReplyError } from 'ioredis';
import type { ChatLock } from '../../chats/chat.repository';
import { missingRedisDatabase } from '../../config/storage.config';
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
/** A turn's write that Redis refused while connected is tried again this much later. */
const RETRY_MS = 1_000;
/** Start-up waits this long at most for the first connection to be ready or to fail. */
const FIRST_CONNECTION_MS = 5_000;
/**
 * Writes a turn's events (KEYS[1]) and its chat's running mark (KEYS[2]) in one command, since the
 * round trips cost the instance more CPU than Redis's work. ARGV: [1] a batch of events to append
 * to the turn's capped stream, renewing its TTL (none when empty); [2] the cap; [3] the TTL; [4] a
 * mark to delete, after the events, while it still names this turn; [5] '1' to write the stream
 * afresh (after Redis was unreachable: it may have lost what it held, and resumes drop repeats);
 * [6] a mark to set first, for [7] ms.
 */
const WRITE_TURN = `
if ARGV[5] == '1' then redis.call('del', KEYS[1]) end
if ARGV[6] ~= '' then redis.call('set', KEYS[2], ARGV[6], 'PX', ARGV[7]) end
if ARGV[1] ~= '' then
  redis.call('xadd', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1])
  redis.call('pexpire', KEYS[1], ARGV[3])
end
if ARGV[4] ~= '' and redis.call('get', KEYS[2]) == ARGV[4] then redis.call('del', KEYS[2]) end
return 0`;

interface RelayCommands {
  writeTurn(
    eventsKey: string,
    runningKey: string,
    batch: string,
    maxEntries: number,
    ttlMs: number,
    unmark: string,
    afresh: '1' | '',
    mark: string,
    leaseMs: number,
  ): Promise<number>;
}

type Entry = [id: string, fields: string[]];

/** Redis's refusal of the SELECT ioredis sends on connecting: the URL's database is not one it has. */
const refusesDatabase = (error: Error) =>
  error instanceof ReplyError && (error as { command?: { name?: string } }).command?.name === 'select';

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
  /** The turns whose writes Redis may still lack: running, or ended with their last write pending. */
  private readonly writers = new Set<TurnWriter>();
  /** While {@link start} waits for the first connection: stops start-up. */
  private refuseStart: ((error: Error) => void) | undefined;

  /** A turn writes its user message, a delta of at least a token at a time, and a final event. */
  private readonly maxEntries: number;

  constructor(
    private readonly url: string,
    private readonly leaseMs: number,
    maxOutputTokens: number,
  ) {
    super();
    this.maxEntries = Math.max(MIN_MAX_ENTRIES, maxOutputTokens + 16);
    // Commands issued in one pass of the event loop go to Redis in one write. Both connections
    // wait for start().
    this.redis = new Redis(url, {
      enableAutoPipelining: true,
      lazyConnect: true,
      scripts: { writeTurn: { lua: WRITE_TURN, numberOfKeys: 2 } },
    }) as Redis & RelayCommands;
    this.redis.on('error', (error) => {
      this.lastError = error.message;
      if (this.refuseStart && refusesDatabase(error)) this.refuseStart(error);
      else this.logger.warn(`Redis: ${error.message}`);
    });
    // Redis may have lost what it held (a restart keeps nothing), and writes may have failed while
    // it was away: each turn that is not wholly written writes itself afresh.
    this.redis.on('ready', () => {
      for (const writer of this.writers) writer.rewrite();
    });
    // ioredis renews only a subscription Redis has taken: by default it gives up the command
    // after ~10 s of reconnecting, and this instance would never hear a stop. It waits instead.
    this.subscriber = this.redis.duplicate({ enableAutoPipelining: false, maxRetriesPerRequest: null });
    this.subscriber.on('error', (error) => {
      this.lastError = error.message;
      this.logger.warn(`Redis subscriber: ${error.message}`);
    });
    this.subscriber.on('message', (_channel: string, chatId: string) => this.stops.get(chatId)?.());
  }

  /**
   * Connects, then subscribes to stop requests. Redis down, or silent for FIRST_CONNECTION_MS,
   * does not stop start-up: ioredis reconnects, and readiness reports Redis meanwhile. A database
   * Redis does not have does (an InvalidConfigError naming REDIS_URL): ioredis would log Redis's
   * refusal of its SELECT and go on in database 0, with whatever else keeps its keys there.
   */
  async start(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.refuseStart = reject;
        timer = setTimeout(resolve, FIRST_CONNECTION_MS);
        // Redis answers the SELECT before the ready check: a refusal comes first. A failure to
        // connect is retried by ioredis.
        this.redis.connect().then(resolve, () => resolve());
      });
    } catch (error) {
      await this.onModuleDestroy();
      throw missingRedisDatabase(this.url, error);
    } finally {
      clearTimeout(timer);
      this.refuseStart = undefined;
    }
    this.subscriber.subscribe(STOP_CHANNEL).then(
      () => (this.subscribed = true),
      (error: Error) => this.logger.warn(`Could not subscribe to stop requests: ${error.message}`),
    );
  }

  begin(lock: ChatLock, stop: () => void): RelayedTurn {
    this.stops.set(lock.chatId, stop);
    const writer = new TurnWriter(this.redis, runningKey(lock.chatId), this.leaseMs, this.maxEntries, {
      warn: (what, error) => this.warn(what)(error),
      done: () => this.writers.delete(writer),
    });
    this.writers.add(writer);
    return {
      identify: (id) => writer.identify(id),
      publish: (event) => writer.publish(event),
      end: () => {
        if (this.stops.get(lock.chatId) === stop) this.stops.delete(lock.chatId);
        writer.end();
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
    // Each event once, in order: a turn that wrote itself afresh after an outage repeats the
    // events Redis kept.
    let last = afterIndex;
    const after = (event: StreamedTurnEvent) => {
      const { index } = parseTurnEventId(event.id)!;
      if (index <= last) return false;
      last = index;
      return true;
    };
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
    for (const writer of this.writers) writer.abandon();
    await Promise.allSettled([close(this.subscriber), close(this.redis)]);
  }
}

/**
 * One turn's writes to Redis, one at a time and in order: its running mark (renewed while it
 * runs), its events in batches, and with the last batch the unmark. A write that fails (Redis is
 * unreachable, or refuses it) is not lost: once Redis is back the turn writes its mark and every
 * event afresh, so another instance can still stop it and resume it whole. Kept for a turn that
 * has ended until its last write is in, or its events would have expired anyway.
 */
class TurnWriter {
  private turn: TurnId | null = null;
  private mark = '';
  private readonly events: StreamedTurnEvent[] = [];
  /** How many of `events` Redis holds. */
  private written = 0;
  /** Whether Redis may lack the mark or an event before `written`: the next write starts afresh. */
  private afresh = false;
  /** Bumped by each start afresh, so a write sent before it does not count its events as held. */
  private generation = 0;
  private writing = false;
  private endedAt: number | null = null;
  private timer: NodeJS.Timeout | undefined;
  private renewal: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis & RelayCommands,
    private readonly runningKey: string,
    private readonly leaseMs: number,
    private readonly maxEntries: number,
    private readonly owner: { warn(what: string, error: Error): void; done(): void },
  ) {}

  identify(turn: TurnId): void {
    this.turn = turn;
    this.mark = JSON.stringify(turn);
    this.redis.set(this.runningKey, this.mark, 'PX', this.leaseMs).catch(this.lost('mark a running turn'));
    this.renewal = setInterval(() => {
      this.redis.pexpire(this.runningKey, this.leaseMs).catch(this.lost('renew a running turn'));
    }, this.leaseMs / 3);
    this.renewal.unref();
  }

  publish(event: StreamedTurnEvent): void {
    this.events.push(event);
    // A final event waits for `end`, which follows it within the same pass of the event loop, to
    // go with the unmark in one command.
    if (!isFinal(event)) this.schedule(FLUSH_MS);
  }

  end(): void {
    clearInterval(this.renewal);
    this.endedAt = Date.now();
    this.write();
  }

  /** Redis is back: write the mark and every event again. */
  rewrite(): void {
    this.afresh = true;
    this.written = 0;
    this.generation++;
    this.write();
  }

  /** The relay closes: nothing more is written. */
  abandon(): void {
    clearInterval(this.renewal);
    clearTimeout(this.timer);
    this.owner.done();
  }

  private schedule(ms: number): void {
    this.timer ??= setTimeout(() => this.write(), ms);
    this.timer.unref();
  }

  private write(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    // The write under way writes what came meanwhile once it is answered.
    if (this.writing) return;
    const ended = this.endedAt !== null;
    if (ended && Date.now() - this.endedAt! > EVENTS_TTL_MS) return this.owner.done();
    const unwritten = this.events.length - this.written;
    // Before the turn has a name, its one event (a failure) names it.
    const turn = this.turn ?? (this.events.length > 0 ? parseTurnEventId(this.events[0].id) : null);
    if (!turn) {
      if (ended) this.owner.done();
      return;
    }
    if (unwritten === 0 && !this.afresh && !ended) return;
    // A write waits for Redis rather than in ioredis's queue, and `ready` rewrites then.
    if (this.redis.status !== 'ready') return;
    const upTo = this.events.length;
    const generation = this.generation;
    const afresh = this.afresh;
    this.afresh = false;
    this.writing = true;
    const batch = unwritten > 0 ? JSON.stringify(this.events.slice(this.written).map(encodeTurnEvent)) : '';
    this.redis
      .writeTurn(
        eventsKey(turn),
        this.runningKey,
        batch,
        this.maxEntries,
        EVENTS_TTL_MS,
        ended ? this.mark : '',
        afresh ? '1' : '',
        afresh && !ended ? this.mark : '',
        this.leaseMs,
      )
      .then(
        () => {
          this.writing = false;
          if (generation === this.generation) this.written = upTo;
          if (this.written < this.events.length || this.afresh) this.write();
          else if (ended) this.owner.done();
        },
        (error: Error) => {
          this.writing = false;
          this.lost(ended ? 'publish events and unmark a running turn' : 'publish events')(error);
        },
      );
  }

  /** A write failed: Redis may lack any of the turn's, so they are all written again. */
  private lost(what: string) {
    return (error: Error) => {
      this.owner.warn(what, error);
      this.afresh = true;
      this.written = 0;
      this.generation++;
      // Unless Redis is unreachable, when `ready` rewrites.
      this.schedule(RETRY_MS);
    };
  }
}

function decodeEntry([, fields]: Entry): StreamedTurnEvent[] {
  const batch = fields[fields.indexOf('e') + 1];
  return (JSON.parse(batch) as Parameters<typeof decodeTurnEvent>[0][]).map(decodeTurnEvent);
}
