import { GroupId, LocalId, ServerId, UserId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"
import { ConversationStore, MAX_TRACKED_RUNS } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { SeqStore } from "@im/ports/SeqStore"
import { StoreWrites } from "@im/ports/StoreWrites"
import { fileRecordsSuite } from "@im/ports/testing/FileRecordsSuite"
import { friendStoreSuite } from "@im/ports/testing/FriendStoreSuite"
import { groupStoreSuite } from "@im/ports/testing/GroupStoreSuite"
import { conversationStoreSuite } from "@im/ports/testing/ConversationStoreSuite"
import { historyStoreSuite } from "@im/ports/testing/HistoryStoreSuite"
import { inboxStoreSuite } from "@im/ports/testing/InboxStoreSuite"
import { seqStoreSuite } from "@im/ports/testing/SeqStoreSuite"
import { sessionStoreSuite } from "@im/ports/testing/SessionStoreSuite"
import { userStoreSuite } from "@im/ports/testing/UserStoreSuite"
import { UserStore } from "@im/ports/UserStore"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer, Option, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { mkdirSync, readdirSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as EmbeddedPostgres from "../src/EmbeddedPostgres.ts"
import * as SqlFileRecords from "../src/SqlFileRecords.ts"
import * as SqlFriendStore from "../src/SqlFriendStore.ts"
import * as SqlConversationStore from "../src/SqlConversationStore.ts"
import * as Migrations from "../src/Migrations.ts"
import * as SqlGroupStore from "../src/SqlGroupStore.ts"
import * as SqlHistoryStore from "../src/SqlHistoryStore.ts"
import * as SqlInboxStore from "../src/SqlInboxStore.ts"
import * as SqlSeqStore from "../src/SqlSeqStore.ts"
import * as SqlSessionStore from "../src/SqlSessionStore.ts"
import * as SqlStorage from "../src/SqlStorage.ts"
import * as SqlStoreWrites from "../src/SqlStoreWrites.ts"
import * as SqlUserStore from "../src/SqlUserStore.ts"

// PGlite takes seconds to start: one in-memory database serves every suite of this file. The
// outer block builds it; the suites find it in the shared memo map and leave it running.
const database = EmbeddedPostgres.layer({ dataDir: undefined })
const shared = { memoMap: Layer.makeMemoMapUnsafe(), timeout: "60 seconds" } as const

layer(database, { ...shared, excludeTestServices: true })("SQL adapters on one in-memory PGlite", () => {
  userStoreSuite("sql", SqlUserStore.layer.pipe(Layer.provide(database)), shared)
  historyStoreSuite("sql", SqlHistoryStore.layer.pipe(Layer.provide(database)), shared)
  conversationStoreSuite("sql", SqlConversationStore.layer.pipe(Layer.provide(database)), shared)
  // Texts this short send most of the suite property test's batches to a tail, read and folded often.
  conversationStoreSuite(
    "sql, short texts",
    SqlConversationStore.layerWith({ appendToHeadUpTo: 8, foldAbove: 40 }).pipe(Layer.provide(database)),
    shared
  )
  groupStoreSuite("sql", SqlGroupStore.layer.pipe(Layer.provide(database)), shared)
  friendStoreSuite("sql", SqlFriendStore.layer.pipe(Layer.provide(database)), shared)
  inboxStoreSuite("sql", SqlInboxStore.layer.pipe(Layer.provide(database)), shared)
  seqStoreSuite("sql", SqlSeqStore.layer.pipe(Layer.provide(database)), shared)
  sessionStoreSuite("sql", SqlSessionStore.layer.pipe(Layer.provide(database)), shared)
  fileRecordsSuite("sql", SqlFileRecords.layer.pipe(Layer.provide(database)), shared)
})

/** A temporary folder, removed with the test's scope. */
const scratchFolder = (prefix: string) =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), prefix))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

describe("EmbeddedPostgres vacuums, as PGlite runs no autovacuum", () => {
  /** pg_class's row count of each table: -1 until a VACUUM or ANALYZE counted it. */
  const counted = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ relname: string; reltuples: number }>`
      SELECT relname, reltuples FROM pg_class WHERE relname IN ('conversations', 'user_seq', 'messages')`
    return Object.fromEntries(rows.map((row) => [row.relname, Number(row.reltuples)]))
  })

  /** The tables of the schema that no VACUUM or ANALYZE has counted yet. */
  const uncounted = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ relname: string }>`
      SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.reltuples < 0 ORDER BY c.relname`
    return rows.map((row) => row.relname)
  })

  it.live("the tables updated in place every interval, the whole database every longer one, a table at a time", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* counted, { conversations: -1, user_seq: -1, messages: -1 }, "nothing vacuumed yet")
      const before = yield* uncounted
      assert.ok(before.length > 10, `the schema's tables, none counted yet: ${before.join(", ")}`)
      // The tables first: the database's interval has not passed.
      yield* Effect.sleep("2 seconds")
      assert.deepStrictEqual(yield* counted, { conversations: 0, user_seq: 0, messages: -1 })
      // Then every table of the database, each on its own, so that other statements (these
      // looks) run between them: some look sees some tables counted and others not yet.
      const seen: Array<ReadonlyArray<string>> = []
      const left = yield* uncounted.pipe(
        Effect.tap((tables) => Effect.sync(() => seen.push(tables))),
        Effect.repeat({ until: (tables) => tables.length === 0, schedule: Schedule.spaced("20 millis") }),
        Effect.timeout("15 seconds")
      )
      assert.deepStrictEqual(left, [])
      const waiting = before.filter((table) => table !== "conversations" && table !== "user_seq").length
      assert.ok(
        seen.some((tables) => tables.length > 0 && tables.length < waiting),
        `a look between two tables' vacuums: ${seen.map((tables) => tables.length).join(", ")}`
      )
      assert.deepStrictEqual(yield* counted, { conversations: 0, user_seq: 0, messages: 0 })
    }).pipe(
      Effect.provide(EmbeddedPostgres.layer({ dataDir: undefined, vacuum: { tablesEvery: "1 second", databaseFirstAfter: "4 seconds" } }))
    ), 60_000)
})

describe("EmbeddedPostgres's settings", () => {
  it.live("keeps PGlite's start parameters, and makes WAL files without filling them with zeros", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const setting = (name: string) =>
        Effect.map(sql<{ readonly setting: string }>`SELECT setting FROM pg_settings WHERE name = ${name}`, (rows) => rows[0]?.setting)
      assert.strictEqual(yield* setting("wal_init_zero"), "off")
      // PGlite's own: no parallel workers, and fsync off.
      assert.strictEqual(yield* setting("max_worker_processes"), "0")
      assert.strictEqual(yield* setting("fsync"), "off")
    }).pipe(Effect.provide(EmbeddedPostgres.layer({ dataDir: undefined }))), 120_000)
})

describe("EmbeddedPostgres in a data folder", () => {
  it.live("keeps users, messages, inbox entries and sequences across a restart", () =>
    Effect.gen(function*() {
      const dataDir = yield* scratchFolder("im-pglite-")
      const stores = Layer.mergeAll(SqlUserStore.layer, SqlHistoryStore.layer, SqlInboxStore.layer, SqlSeqStore.layer).pipe(
        Layer.provide(EmbeddedPostgres.layer({ dataDir }))
      )
      const alice = UserId.make("alice-1")
      const bob = UserId.make("bob-1")
      const user = { id: alice, account: "Alice", name: "Alice", created_at: 1_764_230_400_000, password_hash: "hash" }
      const message: Message = {
        server_id: ServerId.make("s-1"),
        local_id: LocalId.make("l-1"),
        sender_id: alice,
        kind: "single",
        receiver_id: bob,
        content_type: "text",
        content: "still here?",
        create_time: 1_764_230_400_001,
        send_time: 1_764_230_400_002
      }

      // First run: write, then release everything (client, socket server, PGlite).
      yield* Effect.gen(function*() {
        yield* (yield* UserStore).create(user)
        yield* (yield* HistoryStore).save([message])
        const firsts = yield* (yield* SeqStore).allocate([[alice, 3], [bob, 2]])
        assert.deepStrictEqual([firsts.get(alice), firsts.get(bob)], [1, 1])
        yield* (yield* InboxStore).append([
          { user_id: alice, seq: 3, server_id: message.server_id },
          { user_id: bob, seq: 2, server_id: message.server_id }
        ])
      }).pipe(Effect.provide(stores))

      // Second run on the same folder: everything is back, and sequences go on from there.
      yield* Effect.gen(function*() {
        const users = yield* UserStore
        assert.deepStrictEqual(yield* users.findByAccount("alice"), Option.some(user))
        assert.deepStrictEqual(yield* (yield* HistoryStore).get([message.server_id]), [message])
        const inbox = yield* InboxStore
        assert.deepStrictEqual(yield* inbox.range({ user: alice, after: 0, limit: 10 }), [
          { user_id: alice, seq: 3, server_id: message.server_id }
        ])
        assert.strictEqual(yield* inbox.newest(bob), 2)
        const seqs = yield* SeqStore
        assert.strictEqual(yield* seqs.current(alice), 3)
        const firsts = yield* seqs.allocate([[alice, 1], [bob, 5]])
        assert.deepStrictEqual([firsts.get(alice), firsts.get(bob)], [4, 3])
        assert.strictEqual(yield* seqs.current(bob), 7)
        const taken = yield* Effect.flip(users.create({ ...user, id: UserId.make("alice-2"), account: "ALICE" }))
        assert.strictEqual(taken._tag, "AccountTaken")
      }).pipe(Effect.provide(stores))
    }), 120_000)
})

layer(database, { ...shared, excludeTestServices: true })("SqlConversationStore rows", (it) => {
  it.effect("runs go to the row's text while it is short, then to its tail, which is folded in, normalized, once long", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const conversations = yield* Effect.provide(Effect.service(ConversationStore), SqlConversationStore.layer)
      const user = UserId.make("u_interleaved")
      // Every other seq is another conversation's: each unread entry is a run of its own, 6
      // characters of the row from seq 10,000 on.
      const entry = (i: number) => ({ user_id: user, conversation: "u:u_peer", seq: 10_000 + 2 * i, server_id: ServerId.make(`m_${i}`), own: false })
      const entries = (from: number, count: number) => Array.from({ length: count }, (_, i) => entry(from + i))
      const stored = () =>
        Effect.map(
          sql<{ readonly items: number; readonly chars: number; readonly tail: number }>`
            SELECT json_array_length(unread_seqs::json) AS items, length(unread_seqs) AS chars,
              json_array_length(unread_tail::json) AS tail
            FROM conversations WHERE user_id = ${user}`,
          (rows) => rows[0]!
        )
      yield* conversations.record(entries(1, 1_000))
      assert.deepStrictEqual(yield* stored(), { items: 1_000, chars: 6_001, tail: 0 }, "a new row: all in the text")
      yield* conversations.record(entries(1_001, 120))
      assert.deepStrictEqual(yield* stored(), { items: 1_000, chars: 6_001, tail: 120 }, "the text is long: to the tail")
      assert.strictEqual((yield* conversations.list(user))[0]!.unread, MAX_TRACKED_RUNS, "read as one, the newest runs")
      yield* conversations.record(entries(1_121, 20))
      // Past FOLD_ABOVE (800) characters of tail the row was rewritten: the newest MAX_TRACKED_RUNS runs.
      assert.deepStrictEqual(yield* stored(), { items: MAX_TRACKED_RUNS, chars: 6_001, tail: 0 }, "folded")
      const [listed] = yield* conversations.list(user)
      assert.deepStrictEqual([listed!.unread, listed!.last_seq], [MAX_TRACKED_RUNS, 12_280])
      yield* conversations.record([entry(1_141)])
      assert.deepStrictEqual(yield* stored(), { items: MAX_TRACKED_RUNS, chars: 6_001, tail: 1 }, "appended again, to the tail")
      assert.strictEqual((yield* conversations.list(user))[0]!.unread, MAX_TRACKED_RUNS)
      // A read rewrites the row, tail included: 12,082 to 12,282 are left.
      yield* conversations.markRead(user, "u:u_peer", 12_080)
      assert.deepStrictEqual(yield* stored(), { items: 101, chars: 607, tail: 0 })
      assert.strictEqual((yield* conversations.list(user))[0]!.unread, 101)
    }))

  it.effect("a tail takes further batches, and extends its last run when a batch goes on from the newest, unread entry", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const conversations = yield* Effect.provide(
        Effect.service(ConversationStore),
        SqlConversationStore.layerWith({ appendToHeadUpTo: 8, foldAbove: 60 })
      )
      const user = UserId.make("u_tail")
      const record = (seqs: ReadonlyArray<number>, own = false) =>
        conversations.record(seqs.map((seq) => ({ user_id: user, conversation: "u:u_peer", seq, server_id: ServerId.make(`m_tail_${seq}`), own })))
      const row = () =>
        Effect.map(
          sql<{ readonly unread_seqs: string; readonly unread_tail: string }>`
            SELECT unread_seqs, unread_tail FROM conversations WHERE user_id = ${user}`,
          (rows) => [rows[0]!.unread_seqs, rows[0]!.unread_tail]
        )
      yield* record([1, 3, 5])
      yield* record([7])
      assert.deepStrictEqual(yield* row(), ["[1,3,5,7]", "[]"], "short: to the text")
      yield* record([9])
      assert.deepStrictEqual(yield* row(), ["[1,3,5,7]", "[9]"], "long: a tail")
      yield* record([10])
      assert.deepStrictEqual(yield* row(), ["[1,3,5,7]", "[[9,10]]"], "goes on from 9: extended")
      yield* record([12, 13])
      assert.deepStrictEqual(yield* row(), ["[1,3,5,7]", "[[9,10],[12,13]]"], "appended")
      assert.strictEqual((yield* conversations.list(user))[0]!.unread, 8)
      yield* record([15], true)
      assert.deepStrictEqual(yield* row(), ["[]", "[]"], "an own entry reads it all")
      assert.strictEqual((yield* conversations.list(user))[0]!.unread, 0)
    }))

  it.effect("folds more rows at once than a statement has parameters for", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      // No text takes runs: every batch after a row's first goes to its tail, which is long at once.
      const conversations = yield* Effect.provide(
        Effect.service(ConversationStore),
        SqlConversationStore.layerWith({ appendToHeadUpTo: -1, foldAbove: 2 })
      )
      // 33,000 rows, two key parameters each: past PostgreSQL's 65,535 in one list.
      const peers = Array.from({ length: 33_000 }, (_, i) => `u:u_fold_${i}`)
      const user = UserId.make("u_folds")
      const batch = (seq: number) =>
        peers.map((conversation, i) => ({ user_id: user, conversation, seq: seq + 3 * i, server_id: ServerId.make(`m_fold_${seq}_${i}`), own: false }))
      yield* conversations.record(batch(1))
      yield* conversations.record(batch(2))
      const rows = yield* sql<{ readonly tails: number }>`
        SELECT count(*)::int AS tails FROM conversations WHERE user_id = ${user} AND unread_tail <> '[]'`
      assert.strictEqual(rows[0]!.tails, 0, "every grown row folded")
      assert.strictEqual((yield* conversations.list(user)).length, 33_000)
    }), 120_000)

  it.effect("unread_append extends the row's last run when a batch goes on from its newest, unread entry, else appends", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const cases: ReadonlyArray<readonly [string, number, string, string]> = [
        ["[5,[7,9]]", 9, "[10]", "[5,[7,10]]"],
        ["[5,9]", 9, "[[10,12],15]", "[5,[9,12],15]"],
        ["[9]", 9, "[10]", "[[9,10]]"],
        ["[[1,9]]", 9, "[[10,20]]", "[[1,20]]"],
        ["[[1,9]]", 9, "[10,12]", "[[1,10],12]"],
        // Not going on from the newest entry: appended.
        ["[[1,9]]", 9, "[11]", "[[1,9],11]"],
        ["[[1,8]]", 9, "[10]", "[[1,8],10]"], // 9 was the member's own
        ["[4,6,7,9]", 10, "[11]", "[4,6,7,9,11]"],
        ["[]", 9, "[[10,11]]", "[[10,11]]"],
        ["[[1,9]]", 9, "[]", "[[1,9]]"]
      ]
      for (const [stored, last, added, expected] of cases) {
        const rows = yield* sql<{ readonly merged: string }>`SELECT unread_append(${stored}, ${last}, ${added}) AS merged`
        assert.strictEqual(rows[0]!.merged, expected, `${stored} + ${added} after ${last}`)
      }
    }))

  it.effect("a conversation its user never reads stays one run, batch after batch", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const conversations = yield* Effect.provide(Effect.service(ConversationStore), SqlConversationStore.layer)
      const user = UserId.make("u_unreading")
      for (let batch = 0; batch < 200; batch++) {
        yield* conversations.record([1, 2, 3].map((k) => ({
          user_id: user,
          conversation: "g:g_busy",
          seq: 3 * batch + k,
          server_id: ServerId.make(`m_busy_${3 * batch + k}`),
          own: false
        })))
      }
      const rows = yield* sql<{ readonly unread_seqs: string }>`SELECT unread_seqs FROM conversations WHERE user_id = ${user}`
      assert.strictEqual(rows[0]!.unread_seqs, "[[1,600]]")
      assert.strictEqual((yield* conversations.list(user))[0]!.unread, 600)
    }))

  it.effect("a row written before runs (single unread seqs) reads as runs, and is written back as runs", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const conversations = yield* Effect.provide(Effect.service(ConversationStore), SqlConversationStore.layer)
      yield* sql`
        INSERT INTO conversations (user_id, conversation, last_seq, last_server_id, read_seq, unread_seqs)
        VALUES ('u_old', 'g:g_old', 9, 'm_9', 3, '[4,6,7,9]')`
      const [listed] = yield* conversations.list(UserId.make("u_old"))
      assert.strictEqual(listed!.unread, 4)
      const read = yield* conversations.markRead(UserId.make("u_old"), "g:g_old", 6)
      assert.strictEqual(Option.getOrThrow(read).after.unread, 2)
      const rows = yield* sql<{ readonly unread_seqs: string }>`
        SELECT unread_seqs FROM conversations WHERE user_id = 'u_old'`
      assert.strictEqual(rows[0]!.unread_seqs, "[7,9]")
    }))
})

layer(database, { ...shared, excludeTestServices: true })("SqlInboxStore's runs", (it) => {
  const inboxStore = Effect.provide(Effect.service(InboxStore), SqlInboxStore.layer)
  const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`)
  const seqsOf = (refs: ReadonlyArray<{ readonly seq: number }>) => refs.map((ref) => ref.seq)

  it.effect("a group's step is a run per member and a fanout row per message, not a row per entry", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const inbox = yield* inboxStore
      const members = ids("r_member_", 4).map((id) => UserId.make(id))
      const messages = ids("r_msg_", 3).map((id) => ServerId.make(id))
      // Each member's next three numbers, one per message; member i's start at 10 * i.
      const entries = messages.flatMap((server_id, k) => members.map((user_id, i) => ({ user_id, seq: 10 * (i + 1) + k, server_id })))
      assert.deepStrictEqual(yield* inbox.append(entries), [])
      const runs = yield* sql<{ readonly user_id: string; readonly first_seq: bigint; readonly last_seq: bigint; readonly server_ids: ReadonlyArray<string> }>`
        SELECT user_id, first_seq, last_seq, server_ids FROM inbox_runs WHERE user_id LIKE 'r_member_%' ORDER BY user_id`
      assert.deepStrictEqual(
        runs.map((run) => [run.user_id, Number(run.first_seq), Number(run.last_seq), run.server_ids]),
        members.map((user, i) => [user, 10 * (i + 1), 10 * (i + 1) + 2, messages])
      )
      const fanout = yield* sql<{ readonly server_id: string; readonly user_ids: ReadonlyArray<string>; readonly seqs: ReadonlyArray<bigint> }>`
        SELECT server_id, user_ids, seqs FROM inbox_fanout WHERE server_id LIKE 'r_msg_%' ORDER BY server_id`
      assert.deepStrictEqual(
        fanout.map((row) => [row.server_id, row.user_ids, row.seqs.map(Number)]),
        messages.map((id, k) => [id, members, members.map((_, i) => 10 * (i + 1) + k)])
      )
      assert.deepStrictEqual(
        (yield* inbox.range({ user: members[1]!, after: 20, until: 21, limit: 10 })).map((ref) => ref.server_id),
        [messages[1]]
      )
    }))

  it.effect("an id that would not survive the joining (empty, or holding a newline) is refused and stores nothing", () =>
    Effect.gen(function*() {
      const inbox = yield* inboxStore
      const user = UserId.make("r_ids")
      const fine = { user_id: user, seq: 1, server_id: ServerId.make("r_fine") }
      for (const bad of [
        { user_id: user, seq: 2, server_id: ServerId.make("r_a\nb") },
        { user_id: UserId.make("r_a\nb"), seq: 2, server_id: ServerId.make("r_other") },
        { user_id: user, seq: 2, server_id: "" as ServerId },
        { user_id: "" as UserId, seq: 2, server_id: ServerId.make("r_other") }
      ]) {
        const error = yield* Effect.flip(inbox.append([fine, bad]))
        assert.isFalse(error.retryable)
        assert.include(String(error.cause), "an id is empty or holds a newline")
      }
      assert.strictEqual(yield* inbox.newest(user), 0)
    }))

  it.effect("a run over stored numbers stores nothing of the append, and the refusal names the first taken number", () =>
    Effect.gen(function*() {
      const inbox = yield* inboxStore
      const user = UserId.make("r_over")
      const stored = [5, 6].map((seq) => ({ user_id: user, seq, server_id: ServerId.make(`r_over_${seq}`) }))
      yield* inbox.append(stored)
      const error = yield* Effect.flip(inbox.append(
        Array.from({ length: 10 }, (_, i) => ({ user_id: user, seq: i + 1, server_id: ServerId.make(`r_new_${i + 1}`) }))
      ))
      assert.include(String(error.cause), "numbers already taken by other messages: r_over#5")
      assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 20 }), stored)
    }))

  it.effect("migration 0013 moves the entries of the `inbox` table into runs, a run per stretch of consecutive seqs", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const inbox = yield* inboxStore
      const [a, b] = [UserId.make("old_a"), UserId.make("old_b")]
      const checked = Effect.gen(function*() {
        // The tables as migrations 0003 to 0012 left them, in a schema of this transaction's own.
        yield* sql`CREATE SCHEMA migration_0013`
        yield* sql`SET LOCAL search_path TO migration_0013`
        yield* Migrations.migrations["0003_inbox"]
        yield* sql`
          INSERT INTO inbox (user_id, seq, server_id) VALUES
            ('old_a', 1, 'm1'), ('old_a', 2, 'm2'), ('old_a', 3, 'm3'), ('old_a', 7, 'm4'),
            ('old_b', 4, 'm2'), ('old_b', 5, 'm4')`
        yield* Migrations.migrations["0013_inbox_runs"]
        const runs = yield* sql<{ readonly user_id: string; readonly first_seq: bigint; readonly last_seq: bigint; readonly server_ids: ReadonlyArray<string> }>`
          SELECT user_id, first_seq, last_seq, server_ids FROM inbox_runs ORDER BY user_id, first_seq`
        assert.deepStrictEqual(runs.map((run) => [run.user_id, Number(run.first_seq), Number(run.last_seq), run.server_ids]), [
          ["old_a", 1, 3, ["m1", "m2", "m3"]],
          ["old_a", 7, 7, ["m4"]],
          ["old_b", 4, 5, ["m2", "m4"]]
        ])
        const fanout = yield* sql<{ readonly server_id: string; readonly user_ids: ReadonlyArray<string>; readonly seqs: ReadonlyArray<bigint> }>`
          SELECT server_id, user_ids, seqs FROM inbox_fanout ORDER BY server_id`
        assert.deepStrictEqual(fanout.map((row) => [row.server_id, row.user_ids, row.seqs.map(Number)]), [
          ["m1", ["old_a"], [1]],
          ["m2", ["old_a", "old_b"], [2, 4]],
          ["m3", ["old_a"], [3]],
          ["m4", ["old_a", "old_b"], [7, 5]]
        ])
        assert.deepStrictEqual(seqsOf(yield* inbox.range({ user: a, after: 1, limit: 10 })), [2, 3, 7])
        assert.strictEqual(yield* inbox.newest(b), 5)
        const found = yield* inbox.find([{ user_id: a, server_id: ServerId.make("m2") }, { user_id: b, server_id: ServerId.make("m2") }])
        assert.deepStrictEqual(found.map((ref) => ref.seq).sort(), [2, 4])
        // Old and new live together: a replay of an old entry is found, a new one is stored.
        assert.deepStrictEqual(yield* inbox.append([{ user_id: b, seq: 9, server_id: ServerId.make("m4") }]), [
          { user_id: b, seq: 5, server_id: ServerId.make("m4") }
        ])
        yield* inbox.append([{ user_id: a, seq: 8, server_id: ServerId.make("m5") }])
        assert.deepStrictEqual(seqsOf(yield* inbox.range({ user: a, after: 0, limit: 10 })), [1, 2, 3, 7, 8])
        const left = yield* sql<{ readonly name: string | null }>`SELECT to_regclass('migration_0013.inbox')::text AS name`
        assert.strictEqual(left[0]!.name, null, "the old table is gone")
        return yield* Effect.fail("roll back" as const)
      })
      assert.strictEqual(yield* Effect.flip(sql.withTransaction(checked)), "roll back")
      const schemas = yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = 'migration_0013'`
      assert.strictEqual(schemas.length, 0, "nothing of it was kept")
    }))
})

layer(database, { ...shared, excludeTestServices: true })("SqlStoreWrites, as standalone's stores (SqlStorage) provide it", (it) => {
  const stores = SqlStorage.layer.pipe(Layer.provide(database))
  const messageTo = (receiver: UserId, id: string): Message => ({
    server_id: ServerId.make(id),
    local_id: LocalId.make(`l-${id}`),
    sender_id: UserId.make("w_sender"),
    kind: "single",
    receiver_id: receiver,
    content_type: "text",
    content: id,
    create_time: 1,
    send_time: 2
  })

  it.effect("keeps every write, sent together in one transaction", () =>
    Effect.gen(function*() {
      const [writes, history, inbox, conversations] = yield* Effect.all([StoreWrites, HistoryStore, InboxStore, ConversationStore])
      const user = UserId.make("w_kept")
      const message = messageTo(user, "w_m1")
      const stored = yield* writes.unit(Effect.gen(function*() {
        yield* history.save([message])
        const stored = yield* inbox.append([{ user_id: user, seq: 1, server_id: message.server_id }])
        yield* conversations.record([{ user_id: user, seq: 1, server_id: message.server_id, conversation: "u:w_sender", own: false }])
        return stored
      }))
      assert.deepStrictEqual(stored, [], "what the unit returns: the append's answer, nothing stored before")
      assert.deepStrictEqual((yield* history.get([message.server_id])).map((m) => m.content), ["w_m1"])
      assert.strictEqual(yield* inbox.newest(user), 1)
      assert.deepStrictEqual((yield* conversations.list(user)).map((c) => [c.last_seq, c.unread]), [[1, 1]])
    }).pipe(Effect.provide(stores)))

  it.effect("keeps none when one fails: the history and conversation written before a refused entry are rolled back", () =>
    Effect.gen(function*() {
      const [writes, history, inbox, conversations] = yield* Effect.all([StoreWrites, HistoryStore, InboxStore, ConversationStore])
      const user = UserId.make("w_refused")
      const first = messageTo(user, "w_r1")
      yield* inbox.append([{ user_id: user, seq: 1, server_id: first.server_id }])
      // A second message under the taken seq 1 breaks the inbox's key: the append fails.
      const second = messageTo(user, "w_r2")
      const failed = yield* Effect.flip(writes.unit(Effect.gen(function*() {
        yield* history.save([second])
        yield* conversations.record([{ user_id: user, seq: 1, server_id: second.server_id, conversation: "u:w_sender", own: false }])
        yield* inbox.append([{ user_id: user, seq: 1, server_id: second.server_id }])
      })))
      // The inbox's own error, the one that ended the transaction.
      assert.strictEqual(failed._tag, "PortError")
      assert.strictEqual(failed.port, "InboxStore")
      assert.isFalse(failed.retryable)
      assert.include(String(failed.cause), "numbers already taken by other messages: w_refused#1")
      assert.deepStrictEqual(yield* history.get([second.server_id]), [], "the message was not kept")
      assert.deepStrictEqual(yield* conversations.list(user), [], "nor the conversation")
      assert.deepStrictEqual((yield* inbox.range({ user, after: 0, limit: 10 })).map((ref) => ref.server_id), [first.server_id])
    }).pipe(Effect.provide(stores)))
})

layer(database, { ...shared, excludeTestServices: true })("SqlStoreWrites.saveAtOnce: a save in one statement, or none of it", (it) => {
  const stores = SqlStorage.layer.pipe(Layer.provide(database))
  const messageTo = (receiver: UserId, id: string, extra: Partial<Message> = {}): Message => ({
    server_id: ServerId.make(id),
    local_id: LocalId.make(`l-${id}`),
    sender_id: UserId.make("a_sender"),
    kind: "single",
    receiver_id: receiver,
    content_type: "text",
    content: id,
    create_time: 1,
    send_time: 1_764_000_000_000,
    ...extra
  })
  const conversationOf = (user: UserId, seq: number, id: string, own = false) => ({
    user_id: user,
    seq,
    server_id: ServerId.make(id),
    conversation: "u:a_sender",
    own
  })

  it.effect("stores the messages, their entries and conversations, and answers true", () =>
    Effect.gen(function*() {
      const [writes, history, inbox, conversations] = yield* Effect.all([StoreWrites, HistoryStore, InboxStore, ConversationStore])
      const user = UserId.make("a_kept")
      // Numbers past 2^31 beside small ones, and a group message beside a one-to-one: one array each.
      const messages = [
        messageTo(user, "a_m1", { create_time: 1_764_000_000_000 }),
        (({ receiver_id: _, ...rest }) => ({ ...rest, kind: "group", group_id: GroupId.make("g_a") }))(messageTo(user, "a_m2")) satisfies Message
      ]
      const done = yield* writes.saveAtOnce!({
        messages,
        entries: [{ user_id: user, seq: 1, server_id: messages[0]!.server_id }, { user_id: user, seq: 2, server_id: messages[1]!.server_id }],
        conversations: [conversationOf(user, 1, "a_m1")]
      })
      assert.isTrue(done)
      assert.deepStrictEqual(
        [...yield* history.get(messages.map((m) => m.server_id))].sort((a, b) => a.content.localeCompare(b.content)),
        messages,
        "field for field, the missing receiver and group as missing"
      )
      assert.deepStrictEqual((yield* inbox.range({ user, after: 0, limit: 10 })).map((ref) => [ref.seq, ref.server_id]), [[1, "a_m1"], [2, "a_m2"]])
      assert.deepStrictEqual((yield* conversations.list(user)).map((c) => [c.last_seq, c.unread]), [[1, 1]])
    }).pipe(Effect.provide(stores)))

  it.effect("stores none of it and answers false when an entry of its messages was stored before (a replay)", () =>
    Effect.gen(function*() {
      const [writes, history, inbox, conversations] = yield* Effect.all([StoreWrites, HistoryStore, InboxStore, ConversationStore])
      const [ann, ben] = [UserId.make("a_ann"), UserId.make("a_ben")]
      const first = messageTo(ann, "a_r1")
      assert.isTrue(yield* writes.saveAtOnce!({ messages: [first], entries: [{ user_id: ann, seq: 1, server_id: first.server_id }], conversations: [] }))
      const second = messageTo(ben, "a_r2")
      const done = yield* writes.saveAtOnce!({
        messages: [first, second],
        entries: [{ user_id: ann, seq: 2, server_id: first.server_id }, { user_id: ben, seq: 1, server_id: second.server_id }],
        conversations: [conversationOf(ben, 1, "a_r2")]
      })
      assert.isFalse(done)
      assert.deepStrictEqual(yield* history.get([second.server_id]), [], "the new message was not kept")
      assert.strictEqual(yield* inbox.newest(ben), 0, "nor its entry")
      assert.strictEqual(yield* inbox.newest(ann), 1, "the replay was not stored again")
      assert.deepStrictEqual(yield* conversations.list(ben), [], "nor the conversation")
    }).pipe(Effect.provide(stores)))

  it.effect("stores none of it and answers false when a number is another message's, or two entries share one", () =>
    Effect.gen(function*() {
      const [writes, history, inbox] = yield* Effect.all([StoreWrites, HistoryStore, InboxStore])
      const user = UserId.make("a_taken")
      const first = messageTo(user, "a_t1")
      assert.isTrue(yield* writes.saveAtOnce!({ messages: [first], entries: [{ user_id: user, seq: 1, server_id: first.server_id }], conversations: [] }))
      const second = messageTo(user, "a_t2")
      assert.isFalse(yield* writes.saveAtOnce!({ messages: [second], entries: [{ user_id: user, seq: 1, server_id: second.server_id }], conversations: [] }))
      const third = messageTo(user, "a_t3")
      assert.isFalse(yield* writes.saveAtOnce!({
        messages: [second, third],
        entries: [{ user_id: user, seq: 2, server_id: second.server_id }, { user_id: user, seq: 2, server_id: third.server_id }],
        conversations: []
      }))
      assert.deepStrictEqual(yield* history.get([second.server_id, third.server_id]), [])
      assert.deepStrictEqual((yield* inbox.range({ user, after: 0, limit: 10 })).map((ref) => ref.server_id), [first.server_id])
    }).pipe(Effect.provide(stores)))

  it.effect("folds a conversation whose tail grew past its limit, as a record does", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const writes = yield* Effect.provide(Effect.service(StoreWrites), SqlStoreWrites.layerWith({ appendToHeadUpTo: 8, foldAbove: 20 }))
      const user = UserId.make("a_fold")
      const row = () =>
        Effect.map(
          sql<{ readonly unread_seqs: string; readonly unread_tail: string }>`
            SELECT unread_seqs, unread_tail FROM conversations WHERE user_id = ${user}`,
          (rows) => [rows[0]!.unread_seqs, rows[0]!.unread_tail]
        )
      // Every other seq: a run each. 1 to 7 make the text long (9 characters); the rest go to the tail.
      const save = (seqs: ReadonlyArray<number>) => {
        const messages = seqs.map((seq) => messageTo(user, `a_f${seq}`))
        return writes.saveAtOnce!({
          messages,
          entries: seqs.map((seq) => ({ user_id: user, seq, server_id: ServerId.make(`a_f${seq}`) })),
          conversations: seqs.map((seq) => conversationOf(user, seq, `a_f${seq}`))
        })
      }
      assert.isTrue(yield* save([1, 3, 5, 7]))
      assert.isTrue(yield* save([9, 11]))
      assert.deepStrictEqual(yield* row(), ["[1,3,5,7]", "[9,11]"])
      assert.isTrue(yield* save([13, 15, 17, 19, 21]))
      assert.deepStrictEqual(yield* row(), ["[1,3,5,7,9,11,13,15,17,19,21]", "[]"], "past 20 characters of tail: folded")
    }).pipe(Effect.provide(stores)))
})

describe("EmbeddedPostgres's socket", () => {
  it.live("refuses, naming TMPDIR, a socket path too long for a Unix socket, and leaves no folder behind", () =>
    Effect.gen(function*() {
      const root = yield* scratchFolder("im-long-")
      const long = join(root, "x".repeat(90))
      mkdirSync(long)
      const before = process.env["TMPDIR"]
      process.env["TMPDIR"] = long
      const error = yield* Effect.flip(Layer.build(EmbeddedPostgres.layer({ dataDir: undefined }))).pipe(
        Effect.ensuring(Effect.sync(() => {
          if (before === undefined) delete process.env["TMPDIR"]
          else process.env["TMPDIR"] = before
        }))
      )
      assert.strictEqual(error._tag, "EmbeddedPostgresError")
      assert.include(error.message, "TMPDIR")
      assert.deepStrictEqual(readdirSync(long), [], "the socket's folder was removed")
    }))
})
