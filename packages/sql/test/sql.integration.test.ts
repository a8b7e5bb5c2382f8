import { fileRecordsSuite } from "@im/ports/testing/FileRecordsSuite"
import { friendStoreSuite } from "@im/ports/testing/FriendStoreSuite"
import { groupStoreSuite } from "@im/ports/testing/GroupStoreSuite"
import { conversationStoreSuite } from "@im/ports/testing/ConversationStoreSuite"
import { historyStoreSuite } from "@im/ports/testing/HistoryStoreSuite"
import { inboxStoreSuite } from "@im/ports/testing/InboxStoreSuite"
import { seqStoreSuite } from "@im/ports/testing/SeqStoreSuite"
import { sessionStoreSuite } from "@im/ports/testing/SessionStoreSuite"
import { userStoreSuite } from "@im/ports/testing/UserStoreSuite"
import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import * as FreshDatabase from "../testing/FreshDatabase.ts"
import * as SqlFileRecords from "../src/SqlFileRecords.ts"
import * as SqlFriendStore from "../src/SqlFriendStore.ts"
import * as SqlConversationStore from "../src/SqlConversationStore.ts"
import * as SqlGroupStore from "../src/SqlGroupStore.ts"
import * as SqlHistoryStore from "../src/SqlHistoryStore.ts"
import * as SqlInboxStore from "../src/SqlInboxStore.ts"
import * as SqlSeqStore from "../src/SqlSeqStore.ts"
import * as SqlSessionStore from "../src/SqlSessionStore.ts"
import * as SqlUserStore from "../src/SqlUserStore.ts"

// A real PostgreSQL server (`npm run infra:up`, or docker compose); a database of this file's own.
const { layer: database, name: databaseName } = FreshDatabase.layer()
const shared = { memoMap: Layer.makeMemoMapUnsafe(), timeout: "60 seconds" } as const

layer(database, { ...shared, excludeTestServices: true })(`SQL adapters on PostgreSQL (${databaseName})`, (it) => {
  it.effect("the database is a real PostgreSQL server, migrated", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ readonly version: string; readonly db: string }>`
        SELECT version() AS version, current_database() AS db`
      assert.match(row!.version, /^PostgreSQL \d+/)
      assert.notMatch(row!.version, /PGlite|wasm/i)
      assert.strictEqual(row!.db, databaseName)
      const tables = yield* sql<{ readonly table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`
      const names = tables.map((t) => t.table_name)
      for (const table of ["inbox_fanout", "inbox_runs", "messages", "user_seq", "users"]) assert.include(names, table)
      assert.notInclude(names, "inbox", "moved into runs by migration 0013")
    }))

  userStoreSuite("sql on PostgreSQL", SqlUserStore.layer.pipe(Layer.provide(database)), shared)
  historyStoreSuite("sql on PostgreSQL", SqlHistoryStore.layer.pipe(Layer.provide(database)), shared)
  conversationStoreSuite("sql on PostgreSQL", SqlConversationStore.layer.pipe(Layer.provide(database)), shared)
  groupStoreSuite("sql on PostgreSQL", SqlGroupStore.layer.pipe(Layer.provide(database)), shared)
  friendStoreSuite("sql on PostgreSQL", SqlFriendStore.layer.pipe(Layer.provide(database)), shared)
  inboxStoreSuite("sql on PostgreSQL", SqlInboxStore.layer.pipe(Layer.provide(database)), shared)
  seqStoreSuite("sql on PostgreSQL", SqlSeqStore.layer.pipe(Layer.provide(database)), shared)
  sessionStoreSuite("sql on PostgreSQL", SqlSessionStore.layer.pipe(Layer.provide(database)), shared)
  fileRecordsSuite("sql on PostgreSQL", SqlFileRecords.layer.pipe(Layer.provide(database)), shared)
})
