import type { ColumnType, Generated } from 'kysely';
import type { ReplyFailure } from '../../chats/message';

/**
 * The tables as Kysely sees them, for both dialects. Rows differ by driver (PostgreSQL returns
 * Dates and parsed JSON, SQLite strings), so reads are typed as either and the repository maps
 * them; writes are always ISO strings and JSON text.
 */
type Timestamp = ColumnType<Date | string, string, string>;
type NullableTimestamp = ColumnType<Date | string | null, string | null, string | null>;
type Json<T> = ColumnType<T | string, string, string>;
type NullableJson<T> = ColumnType<T | string | null, string | null, string | null>;
/** Epoch milliseconds by the database's clock; PostgreSQL's bigint arrives as a string. */
type EpochMs = ColumnType<number | string, number, number>;

export interface ChatsTable {
  id: string;
  tenant_id: string;
  title: string | null;
  system_prompt: string | null;
  model: string;
  metadata: Json<Record<string, string>>;
  message_count: ColumnType<number, number | undefined, number>;
  created_at: Timestamp;
  updated_at: Timestamp;
  last_message_at: NullableTimestamp;
  current_message_id: string | null;
  /** The line of the current message: an append that follows it continues that line. */
  current_line_id: string | null;
}

export interface MessagesTable {
  id: string;
  chat_id: string;
  seq: number;
  role: string;
  content: string;
  status: string;
  in_reply_to: string | null;
  parent_id: string | null;
  /** The id of the first message of its line, the chain of first children it belongs to. */
  line_id: string;
  model: string | null;
  usage: NullableJson<{ promptTokens: number; completionTokens: number }>;
  token_count: number;
  created_at: Timestamp;
  /** An incomplete reply's failure (Message.failure); null on every other message. */
  failure: NullableJson<ReplyFailure>;
}

/** The holder of a chat's turn lock: at most one row per chat, valid until `expires_at`. */
export interface ChatLeasesTable {
  chat_id: string;
  owner: string;
  expires_at: EpochMs;
  /** A stop was requested for the turn that holds the lease (SQLite stores 0 or 1). */
  stop_requested: ColumnType<boolean | number, boolean | number | undefined, boolean | number>;
}

/** Instances waiting for a chat's lease, in arrival order (`ticket`), each alive until `expires_at`. */
export interface ChatLeaseWaitersTable {
  ticket: Generated<number | string>;
  chat_id: string;
  owner: string;
  expires_at: EpochMs;
}

/** Idempotency-Key records (see IdempotencyStore); times are epoch milliseconds. */
export interface IdempotencyKeysTable {
  tenant_id: string;
  route: string;
  chat_id: string;
  key: string;
  holder: string;
  fingerprint: string;
  state: 'running' | 'stopped' | 'completed';
  progress: string | null;
  response: string | null;
  lease_until: EpochMs;
  expires_at: EpochMs;
}

/** Each chat's summary digest (see ChatDigestStore), gone with its chat. */
export interface ChatDigestsTable {
  chat_id: string;
  last_seq: number;
  snapshot: string;
}

export interface DatabaseSchema {
  chats: ChatsTable;
  messages: MessagesTable;
  chat_leases: ChatLeasesTable;
  chat_lease_waiters: ChatLeaseWaitersTable;
  idempotency_keys: IdempotencyKeysTable;
  chat_digests: ChatDigestsTable;
}
