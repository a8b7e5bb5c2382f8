import { PgMigrator } from "@effect/sql-pg"
import { Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"

/**
 * The schema of the standalone store, as numbered migrations (portable PostgreSQL: the same
 * statements run on PGlite and on a real server). Times and sequence numbers are BIGINT, which
 * @effect/sql-pg hands back as JS `bigint`: the adapters convert at their edge.
 */
export const migrations = {
  "0001_users": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE users (
        id TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        account_lower TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`
  }),
  "0002_messages": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE messages (
        server_id TEXT PRIMARY KEY,
        local_id TEXT NOT NULL,
        sender_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        receiver_id TEXT,
        group_id TEXT,
        content_type TEXT NOT NULL,
        content TEXT NOT NULL,
        create_time BIGINT NOT NULL,
        send_time BIGINT NOT NULL
      )`
  }),
  "0003_inbox": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE inbox (
        user_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        server_id TEXT NOT NULL,
        PRIMARY KEY (user_id, seq),
        UNIQUE (user_id, server_id)
      )`
    yield* sql`
      CREATE TABLE user_seq (
        user_id TEXT PRIMARY KEY,
        seq BIGINT NOT NULL
      )`
  }),
  /**
   * The durable floor of the Redis sequence store: every number a user was ever handed out is
   * at most `reserved`, which only grows. After Redis loses its data, counters restart above it.
   */
  "0004_seq_floor": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE seq_floor (
        user_id TEXT PRIMARY KEY,
        reserved BIGINT NOT NULL
      )`
  }),
  "0005_groups": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`
    yield* sql`
      CREATE TABLE group_members (
        group_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        role TEXT NOT NULL,
        joined_at BIGINT NOT NULL,
        PRIMARY KEY (group_id, user_id)
      )`
    yield* sql`CREATE INDEX group_members_by_user ON group_members (user_id)`
  }),
  /**
   * A group's info (avatar, announcement, whether joining needs approval) and the requests to
   * join; a user has at most one pending request per group (the partial unique index).
   */
  "0009_group_admin": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE groups ADD COLUMN avatar TEXT`
    yield* sql`ALTER TABLE groups ADD COLUMN announcement TEXT`
    yield* sql`ALTER TABLE groups ADD COLUMN join_approval BOOLEAN NOT NULL DEFAULT false`
    yield* sql`
      CREATE TABLE group_join_requests (
        id TEXT PRIMARY KEY,
        group_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        message TEXT,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL
      )`
    yield* sql`
      CREATE UNIQUE INDEX group_join_requests_pending ON group_join_requests (group_id, user_id)
      WHERE status = 'pending'`
    yield* sql`CREATE INDEX group_join_requests_by_group ON group_join_requests (group_id, created_at)`
  }),
  /**
   * Recalled messages keep their row, emptied and marked. Each user's conversations: the newest
   * entry, how far the user has read, and the seqs of the entries from others not read yet.
   */
  "0010_conversations_recall": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE messages ADD COLUMN recalled BOOLEAN NOT NULL DEFAULT false`
    yield* sql`
      CREATE TABLE conversations (
        user_id TEXT NOT NULL,
        conversation TEXT NOT NULL,
        last_seq BIGINT NOT NULL,
        last_server_id TEXT NOT NULL,
        read_seq BIGINT NOT NULL,
        unread_seqs TEXT NOT NULL,
        PRIMARY KEY (user_id, conversation)
      )`
  }),
  /**
   * Users get a private email (unique case-insensitively through `email_lower`; NULLs do not
   * collide) and an avatar; `sessions` holds the live login sessions and their one good
   * refresh id. An ended session's row is deleted.
   */
  "0006_user_email_sessions": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE users ADD COLUMN email TEXT`
    yield* sql`ALTER TABLE users ADD COLUMN email_lower TEXT`
    yield* sql`ALTER TABLE users ADD COLUMN avatar TEXT`
    yield* sql`CREATE UNIQUE INDEX users_by_email ON users (email_lower)`
    yield* sql`
      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        refresh_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`
    yield* sql`CREATE INDEX sessions_by_user ON sessions (user_id)`
  }),
  /** Announced files (their bytes are in the FileStore) and the conversations each was sent into. */
  "0007_files": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE files (
        id TEXT PRIMARY KEY,
        owner_id TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size BIGINT NOT NULL,
        created_at BIGINT NOT NULL
      )`
    yield* sql`CREATE INDEX files_by_owner ON files (owner_id, created_at)`
    yield* sql`
      CREATE TABLE file_shares (
        file_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        target_id TEXT NOT NULL,
        PRIMARY KEY (file_id, kind, target_id)
      )`
  }),
  /**
   * Friend requests (at most one pending per direction) and every user's contact list: one row
   * per (user, friend) holding its last change, a removed entry kept as a tombstone so that a
   * client can sync the changes after a version; each list's version in `contact_versions`.
   */
  "0008_friends": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE friend_requests (
        id TEXT PRIMARY KEY,
        from_id TEXT NOT NULL,
        to_id TEXT NOT NULL,
        message TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
      )`
    yield* sql`CREATE UNIQUE INDEX friend_requests_pending ON friend_requests (from_id, to_id) WHERE status = 'pending'`
    yield* sql`CREATE INDEX friend_requests_pending_to ON friend_requests (to_id) WHERE status = 'pending'`
    yield* sql`
      CREATE TABLE friendships (
        user_id TEXT NOT NULL,
        friend_id TEXT NOT NULL,
        state TEXT NOT NULL,
        removed BOOLEAN NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        version BIGINT NOT NULL,
        PRIMARY KEY (user_id, friend_id)
      )`
    yield* sql`CREATE INDEX friendships_by_version ON friendships (user_id, version)`
    yield* sql`
      CREATE TABLE contact_versions (
        user_id TEXT PRIMARY KEY,
        version BIGINT NOT NULL
      )`
  }),
  /**
   * A batch's new unread runs are appended to `unread_seqs` in the database (SqlConversationStore):
   * kept uncompressed, a long value is copied on each append instead of decompressed and
   * compressed again (in PGlite, 10 ms instead of 65 ms for 400 rows of 350 runs).
   */
  "0011_unread_uncompressed": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE conversations ALTER COLUMN unread_seqs SET STORAGE EXTERNAL`
  }),
  /**
   * A database migrated by a development build whose 0011 made `unread_seqs` jsonb gets its
   * text back (the same JSON); on text the change is none.
   */
  "0012_unread_text": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE conversations ALTER COLUMN unread_seqs TYPE text USING unread_seqs::text`
    yield* sql`ALTER TABLE conversations ALTER COLUMN unread_seqs SET STORAGE EXTERNAL`
  }),
  /**
   * The inbox as runs (SqlInboxStore): a row per user and stretch of consecutive seqs stored
   * together, and a row per message and append naming its users and their seqs, instead of a row
   * per entry. A step of a group of 500 is 500 + 20 rows instead of 10,000 (in PGlite 2 µs per
   * entry instead of 20). The entries stored so far are moved over, a run per stretch.
   */
  "0013_inbox_runs": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE TABLE inbox_runs (
        user_id TEXT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        server_ids TEXT[] NOT NULL,
        PRIMARY KEY (user_id, last_seq)
      )`
    yield* sql`
      CREATE TABLE inbox_fanout (
        server_id TEXT NOT NULL,
        user_ids TEXT[] NOT NULL,
        seqs BIGINT[] NOT NULL
      )`
    // One index, unique: a message's second fanout row (members added since) names other users
    // first, while two appends of one message at once (two writers) collide here.
    yield* sql`CREATE UNIQUE INDEX inbox_fanout_message ON inbox_fanout (server_id, (user_ids[1]))`
    // Stored uncompressed: compressing a group's user list on every append costs more than it saves.
    yield* sql`ALTER TABLE inbox_runs ALTER COLUMN server_ids SET STORAGE EXTERNAL`
    yield* sql`ALTER TABLE inbox_fanout ALTER COLUMN user_ids SET STORAGE EXTERNAL`
    yield* sql`ALTER TABLE inbox_fanout ALTER COLUMN seqs SET STORAGE EXTERNAL`
    yield* sql`
      INSERT INTO inbox_runs (user_id, first_seq, last_seq, server_ids)
      SELECT user_id, min(seq), max(seq), array_agg(server_id ORDER BY seq)
      FROM (SELECT user_id, seq, server_id, seq - row_number() OVER (PARTITION BY user_id ORDER BY seq) AS stretch FROM inbox) AS entries
      GROUP BY user_id, stretch`
    yield* sql`
      INSERT INTO inbox_fanout (server_id, user_ids, seqs)
      SELECT server_id, array_agg(user_id ORDER BY user_id), array_agg(seq ORDER BY user_id)
      FROM inbox GROUP BY server_id`
    yield* sql`DROP TABLE inbox`
  }),
  /**
   * `unread_append(stored, stored_last, added)`: the unread runs of a conversation row with a
   * batch's runs added (SqlConversationStore's upsert). Where the batch's first run starts right
   * after the row's newest entry and that entry is unread, the row's last run is extended instead
   * of a run added: a group that a member does not read stays one run, where each batch used to
   * add one and make every later upsert copy a longer row (500 members × a few KB a step).
   * Otherwise the runs are appended as before; reading a row normalizes either (normalizeRuns).
   * (Bracket expressions, not backslashes: `[[]` is "[", `[]]` is "]", `[0-9]` a digit.)
   */
  "0014_unread_append": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      CREATE FUNCTION unread_append(stored text, stored_last bigint, added text) RETURNS text
      LANGUAGE sql IMMUTABLE STRICT AS $$
        SELECT CASE
          WHEN added = '[]' THEN stored
          WHEN stored = '[]' THEN added
          WHEN substring(added from '^[[][[]?([0-9]+)')::bigint = stored_last + 1
            AND substring(stored from '([0-9]+)[]][]]?$')::bigint = stored_last
          THEN
            -- The row's last element without its end ("…,[a," for a run, "…,[b," for a single b),
            (CASE WHEN stored ~ '[]][]]$' THEN regexp_replace(stored, '[0-9]+[]][]]$', '')
              ELSE regexp_replace(stored, '[0-9]+[]]$', '') || '[' || stored_last || ',' END)
            -- the end of the batch's first run, and the batch's other runs.
            || (CASE WHEN added ~ '^[[][[]' THEN substring(added from '^[[][[][0-9]+,([0-9]+)[]]') ELSE substring(added from '^[[]([0-9]+)') END)
            || ']'
            || (CASE WHEN added ~ '^[[][[]' THEN regexp_replace(added, '^[[][[][0-9]+,[0-9]+[]]', '') ELSE regexp_replace(added, '^[[][0-9]+', '') END)
          ELSE left(stored, -1) || ',' || substr(added, 2)
        END
      $$`
  }),
  /**
   * `conversations.unread_tail`: the unread runs appended since the row was last rewritten, once
   * `unread_seqs` is long (SqlConversationStore): an append copies the short tail, not the text.
   */
  "0015_unread_tail": Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`ALTER TABLE conversations ADD COLUMN unread_tail TEXT NOT NULL DEFAULT '[]'`
    yield* sql`ALTER TABLE conversations ALTER COLUMN unread_tail SET STORAGE EXTERNAL`
  })
}

/**
 * Applies the migrations not yet applied. `PgMigrator.run` would also need a process spawner,
 * a file system and a path service, only to dump the schema with pg_dump, which we never ask
 * for; the migrator it is built from needs nothing but the client.
 */
export const run = PgMigrator.make({})({ loader: PgMigrator.fromRecord(migrations) })

/** Builds to nothing: a database that has been migrated. */
export const layer: Layer.Layer<never, PgMigrator.MigrationError | SqlError.SqlError, SqlClient.SqlClient> = Layer
  .effectDiscard(run)
