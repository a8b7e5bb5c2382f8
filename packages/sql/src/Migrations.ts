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
