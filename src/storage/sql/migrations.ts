import { Kysely, Migration, sql } from 'kysely';
import type { SqlDialectName } from './sql-dialect';

/*
 * Versioned migrations, applied in name order and never edited once released: a change of
 * schema is a new entry. Each spells out its own column types, so a later change of the shared
 * code cannot alter what an old migration did.
 */
export function migrationsFor(dialect: SqlDialectName): Record<string, Migration> {
  const postgres = dialect === 'postgres';
  // PostgreSQL has native types; SQLite stores ids, times and JSON as text (ISO 8601, UTF-8).
  const uuid = postgres ? 'uuid' : 'text';
  const timestamp = postgres ? 'timestamptz' : 'text';
  const json = postgres ? 'jsonb' : 'text';

  return {
    '0001_chats_and_messages': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('chats')
          .addColumn('id', uuid, (c) => c.primaryKey())
          .addColumn('title', 'text')
          .addColumn('system_prompt', 'text')
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('metadata', json, (c) => c.notNull())
          .addColumn('message_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', timestamp, (c) => c.notNull())
          .addColumn('updated_at', timestamp, (c) => c.notNull())
          .addColumn('last_message_at', timestamp)
          .execute();
        await db.schema
          .createTable('messages')
          .addColumn('id', uuid, (c) => c.primaryKey())
          .addColumn('chat_id', uuid, (c) => c.notNull().references('chats.id').onDelete('cascade'))
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('content', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('in_reply_to', uuid)
          .addColumn('model', 'text')
          .addColumn('usage', json)
          .addColumn('token_count', 'integer', (c) => c.notNull())
          .addColumn('created_at', timestamp, (c) => c.notNull())
          .execute();
        // One message per position: two writers can never both store a chat's n-th message.
        // It is also the index of every message page (keyset on seq) and of the cascade.
        await db.schema
          .createIndex('messages_chat_id_seq')
          .on('messages')
          .columns(['chat_id', 'seq'])
          .unique()
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('messages').execute();
        await db.schema.dropTable('chats').execute();
      },
    },
    '0002_chat_leases': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('chat_leases')
          .addColumn('chat_id', uuid, (c) => c.primaryKey())
          .addColumn('owner', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('chat_lease_waiters')
          .addColumn('ticket', postgres ? 'bigint' : 'integer', (c) =>
            postgres ? c.primaryKey().generatedAlwaysAsIdentity() : c.primaryKey().autoIncrement(),
          )
          .addColumn('chat_id', uuid, (c) => c.notNull())
          .addColumn('owner', 'text', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .execute();
        await db.schema
          .createIndex('chat_lease_waiters_chat_id_ticket')
          .on('chat_lease_waiters')
          .columns(['chat_id', 'ticket'])
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('chat_lease_waiters').execute();
        await db.schema.dropTable('chat_leases').execute();
      },
    },
    '0003_chat_tenants': {
      async up(db: Kysely<unknown>) {
        // Chats stored before API keys existed belong to the open tenant, named 'default'.
        await db.schema
          .alterTable('chats')
          .addColumn('tenant_id', 'text', (c) => c.notNull().defaultTo('default'))
          .execute();
        // Every chat list is a keyset query within one tenant.
        await db.schema.createIndex('chats_tenant_id_id').on('chats').columns(['tenant_id', 'id']).execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropIndex('chats_tenant_id_id').execute();
        await db.schema.alterTable('chats').dropColumn('tenant_id').execute();
      },
    },
    '0004_idempotency_keys': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('idempotency_keys')
          .addColumn('tenant_id', 'text', (c) => c.notNull())
          .addColumn('route', 'text', (c) => c.notNull())
          // Not a reference: a key outlives nothing it names, it only expires.
          .addColumn('chat_id', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('holder', 'text', (c) => c.notNull())
          .addColumn('fingerprint', 'text', (c) => c.notNull())
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('progress', 'text')
          .addColumn('response', 'text')
          .addColumn('lease_until', 'bigint', (c) => c.notNull())
          .addColumn('expires_at', 'bigint', (c) => c.notNull())
          .addPrimaryKeyConstraint('idempotency_keys_pk', ['tenant_id', 'route', 'chat_id', 'key'])
          .execute();
        await db.schema
          .createIndex('idempotency_keys_expires_at')
          .on('idempotency_keys')
          .column('expires_at')
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('idempotency_keys').execute();
      },
    },
    '0005_chat_digests': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('chat_digests')
          .addColumn('chat_id', uuid, (c) => c.primaryKey().references('chats.id').onDelete('cascade'))
          .addColumn('last_seq', 'integer', (c) => c.notNull())
          // Opaque to the database: only the service reads it, whole.
          .addColumn('snapshot', 'text', (c) => c.notNull())
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('chat_digests').execute();
      },
    },
    '0006_sqlite_counts_messages': {
      // SQLite cannot update the chat and insert the message in one statement, as PostgreSQL does
      // with a data-modifying WITH; a trigger lets it store a message in one statement too.
      async up(db: Kysely<unknown>) {
        if (postgres) return;
        await sql`
          create trigger messages_count_on_chat after insert on messages begin
            update chats
            set message_count = message_count + 1, updated_at = new.created_at, last_message_at = new.created_at
            where id = new.chat_id;
          end`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        if (!postgres) await sql`drop trigger messages_count_on_chat`.execute(db);
      },
    },
    '0007_message_branches': {
      // Messages form a tree. A line is a chain of first children (see SqlChatRepository), named by
      // its first message's id, so a branch is read as a few index ranges, one per line it crosses.
      // The chat keeps its current message and that message's line, which an append continues.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('messages').addColumn('parent_id', uuid).execute();
        await db.schema.alterTable('messages').addColumn('line_id', uuid).execute();
        await db.schema.alterTable('chats').addColumn('current_message_id', uuid).execute();
        await db.schema.alterTable('chats').addColumn('current_line_id', uuid).execute();
        // Every chat so far is one line: message n follows message n - 1.
        await sql`
          update messages set
            parent_id = (select p.id from messages p where p.chat_id = messages.chat_id and p.seq = messages.seq - 1),
            line_id = (select f.id from messages f where f.chat_id = messages.chat_id and f.seq = 1)`.execute(db);
        await sql`
          update chats set
            current_message_id = (select m.id from messages m where m.chat_id = chats.id and m.seq = chats.message_count),
            current_line_id = (select m.id from messages m where m.chat_id = chats.id and m.seq = 1)`.execute(db);
        await db.schema.createIndex('messages_line_id_seq').on('messages').columns(['line_id', 'seq']).execute();
        await db.schema.createIndex('messages_parent_id').on('messages').column('parent_id').execute();
        if (postgres) return;
        await sql`drop trigger messages_count_on_chat`.execute(db);
        await sql`
          create trigger messages_count_on_chat after insert on messages begin
            update chats
            set message_count = message_count + 1, updated_at = new.created_at, last_message_at = new.created_at,
                current_message_id = new.id, current_line_id = new.line_id
            where id = new.chat_id;
          end`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        if (!postgres) {
          await sql`drop trigger messages_count_on_chat`.execute(db);
          await sql`
            create trigger messages_count_on_chat after insert on messages begin
              update chats
              set message_count = message_count + 1, updated_at = new.created_at, last_message_at = new.created_at
              where id = new.chat_id;
            end`.execute(db);
        }
        await db.schema.dropIndex('messages_parent_id').execute();
        await db.schema.dropIndex('messages_line_id_seq').execute();
        await db.schema.alterTable('chats').dropColumn('current_line_id').execute();
        await db.schema.alterTable('chats').dropColumn('current_message_id').execute();
        await db.schema.alterTable('messages').dropColumn('line_id').execute();
        await db.schema.alterTable('messages').dropColumn('parent_id').execute();
      },
    },
    '0008_turn_stop_requests': {
      // A stop requested for a chat's running turn marks the lease its turn holds; the instance
      // that holds it sees the mark (SqlTurnRelay), and the next holder starts without one.
      async up(db: Kysely<unknown>) {
        await db.schema
          .alterTable('chat_leases')
          .addColumn('stop_requested', postgres ? 'boolean' : 'integer', (c) =>
            c.notNull().defaultTo(postgres ? sql`false` : 0),
          )
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('chat_leases').dropColumn('stop_requested').execute();
      },
    },
    '0009_message_search': {
      // Full-text search by the database's own machinery, built here for the messages stored so
      // far and kept by the database from then on. PostgreSQL: the `english` configuration (stop
      // words out, Snowball stems) in a generated column with a GIN index. SQLite: an FTS5 index
      // of the messages table (Porter stems, diacritics kept as PostgreSQL keeps them), kept by
      // triggers; it goes with its messages, cascades included.
      async up(db: Kysely<unknown>) {
        if (postgres) {
          await sql`
            alter table messages add column search_vector tsvector
            generated always as (to_tsvector('english', content)) stored`.execute(db);
          await sql`create index messages_search_vector on messages using gin (search_vector)`.execute(db);
          return;
        }
        await sql`
          create virtual table messages_fts using fts5(
            content, content = 'messages', content_rowid = 'rowid',
            tokenize = 'porter unicode61 remove_diacritics 0')`.execute(db);
        await sql`
          create trigger messages_fts_insert after insert on messages begin
            insert into messages_fts (rowid, content) values (new.rowid, new.content);
          end`.execute(db);
        await sql`
          create trigger messages_fts_delete after delete on messages begin
            insert into messages_fts (messages_fts, rowid, content) values ('delete', old.rowid, old.content);
          end`.execute(db);
        await sql`insert into messages_fts (messages_fts) values ('rebuild')`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        if (postgres) {
          await sql`drop index messages_search_vector`.execute(db);
          await sql`alter table messages drop column search_vector`.execute(db);
          return;
        }
        await sql`drop trigger messages_fts_delete`.execute(db);
        await sql`drop trigger messages_fts_insert`.execute(db);
        await sql`drop table messages_fts`.execute(db);
      },
    },
    '0010_postgres_search_words': {
      // PostgreSQL's parser reads an address, a link, a file name, a number with a point and markup
      // each as one token ("user@example.com", "package.json", "<aside class=note>"), so no word in
      // them was found, as the other storages find them; and it indexed hyphenated words and links
      // whole and in parts, which could take a long message past the 1 MB a tsvector holds (the
      // insert failed). With ASCII punctuation read as spaces, it indexes the words the others do.
      // The final sigma is read as σ, to which it lowers Σ: "ΟΔΟΣ" and "οδος" are one word, as on
      // the other storages (search-terms.ts). Dropping the column drops its index; adding it back
      // computes it for every message.
      async up(db: Kysely<unknown>) {
        if (!postgres) return;
        const punctuation = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
        const asSpaces = sql.raw(
          `translate(content, E'${punctuation.replace(/[\\']/g, '\\$&')}ς', repeat(' ', 32) || 'σ')`,
        );
        await sql`alter table messages drop column search_vector`.execute(db);
        await sql`
          alter table messages add column search_vector tsvector
          generated always as (to_tsvector('english', ${asSpaces})) stored`.execute(db);
        await sql`create index messages_search_vector on messages using gin (search_vector)`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        if (!postgres) return;
        await sql`alter table messages drop column search_vector`.execute(db);
        await sql`
          alter table messages add column search_vector tsvector
          generated always as (to_tsvector('english', content)) stored`.execute(db);
        await sql`create index messages_search_vector on messages using gin (search_vector)`.execute(db);
      },
    },
    '0011_reply_failures': {
      // A reply stored incomplete just before its turn failed keeps that failure, so that a resume
      // on any instance ends with the error its stream ended with, not with the partial reply.
      async up(db: Kysely<unknown>) {
        await db.schema.alterTable('messages').addColumn('failure', json).execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('messages').dropColumn('failure').execute();
      },
    },
  };
}

/** The schema (PostgreSQL) the migrations apply to: the first of the connection's search_path. */
export async function currentSchema<DB>(db: Kysely<DB>): Promise<string> {
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const schema = rows[0]?.schema;
  if (!schema) throw new Error('DATABASE_URL names no existing schema on its search_path');
  return schema;
}
