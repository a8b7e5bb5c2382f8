import { assert, describe, it } from "@effect/vitest"
import { ServerId, UserId } from "@im/domain/Ids"
import { ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { type Save, StoreWrites } from "@im/ports/StoreWrites"
import * as EmbeddedPostgres from "@im/sql/EmbeddedPostgres"
import * as SqlStorage from "@im/sql/SqlStorage"
import { flakyInbox } from "@im/ports/testing/FlakyInbox"
import * as Metrics from "@im/observability/Metrics"
import { Effect, Layer, Metric } from "effect"
import { Db } from "../src/Db.ts"

import { bob, message } from "./Fixtures.ts"

/** Bob's inbox holds seqs 1, 2, 4, 5 (3 was skipped), messages m_1.., one per seq. */
const withInbox = <A, E>(f: (db: Db["Service"]) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const db = yield* Effect.service(Db)
    const seqs = [1, 2, 4, 5]
    yield* db.save(seqs.map(message), seqs.map((seq) => ({ user_id: bob, seq, server_id: ServerId.make(`m_${seq}`) })))
    return yield* f(db)
  }).pipe(Effect.provide(Db.layer.pipe(Layer.provide([HistoryStore.layerMemory, InboxStore.layerMemory, ConversationStore.layerMemory]))))

describe("Db.pull", () => {
  it.effect("answers (after, newest] with the skipped number covered by `through`", () =>
    withInbox((db) =>
      Effect.gen(function*() {
        const page = yield* db.pull({ user: bob, after: 0, limit: 10 })
        assert.deepStrictEqual(page.entries.map((e) => [e.seq, e.message.content]), [[1, "#1"], [2, "#2"], [4, "#4"], [5, "#5"]])
        assert.strictEqual(page.through, 5)
        assert.isFalse(page.has_more)
        assert.strictEqual(yield* db.newest(bob), 5)
      })
    ))

  it.effect("pages: `through` is the last entry returned while more remain", () =>
    withInbox((db) =>
      Effect.gen(function*() {
        const first = yield* db.pull({ user: bob, after: 0, limit: 2 })
        assert.deepStrictEqual([first.entries.map((e) => e.seq), first.through, first.has_more], [[1, 2], 2, true])
        const second = yield* db.pull({ user: bob, after: first.through, limit: 2 })
        assert.deepStrictEqual([second.entries.map((e) => e.seq), second.through, second.has_more], [[4, 5], 5, false])
      })
    ))

  it.effect("`until` bounds the answer, inclusive; a gap-only range is settled with no entries", () =>
    withInbox((db) =>
      Effect.gen(function*() {
        const bounded = yield* db.pull({ user: bob, after: 1, until: 4, limit: 10 })
        assert.deepStrictEqual([bounded.entries.map((e) => e.seq), bounded.through, bounded.has_more], [[2, 4], 4, false])
        const gap = yield* db.pull({ user: bob, after: 2, until: 3, limit: 10 })
        assert.deepStrictEqual([gap.entries, gap.through], [[], 3])
        const beyond = yield* db.pull({ user: bob, after: 4, until: 99, limit: 10 })
        assert.strictEqual(beyond.through, 5) // numbers above the newest are not settled yet
        const ahead = yield* db.pull({ user: bob, after: 9, limit: 10 })
        assert.deepStrictEqual([ahead.entries, ahead.through], [[], 9])
      })
    ))

  it.effect("refuses ranges that make no sense", () =>
    withInbox((db) =>
      Effect.gen(function*() {
        const bad = [
          { after: -1, limit: 10 },
          { after: 0, limit: 0 },
          { after: 0, limit: 1001 },
          { after: 0.5, limit: 10 },
          { after: 3, until: 2, limit: 10 }
        ]
        const tags = yield* Effect.forEach(bad, (range) => Effect.flip(db.pull({ user: bob, ...range })).pipe(Effect.map((e) => e._tag)))
        assert.deepStrictEqual(tags, bad.map(() => "InvalidRange"))
      })
    ))

  it.effect("an empty inbox is at 0", () =>
    withInbox((db) =>
      Effect.gen(function*() {
        const nobody = UserId.make("u_nobody")
        assert.strictEqual(yield* db.newest(nobody), 0)
        assert.deepStrictEqual(yield* db.pull({ user: nobody, after: 0, limit: 10 }), { entries: [], through: 0, has_more: false })
      })
    ))
})

describe("Db.save", () => {
  it.effect("a conversation never counts entries whose append failed: the retry stores them under other seqs", () =>
    Effect.gen(function*() {
      // The first append fails (after a while, as a database round trip would); the retry's succeeds.
      const inbox = flakyInbox([true], { yieldsFirst: 5 })
      yield* Effect.gen(function*() {
        const db = yield* Effect.service(Db)
        const conversations = yield* Effect.service(ConversationStore)
        const failed = yield* Effect.flip(db.save([message(1)], [{ user_id: bob, seq: 1, server_id: ServerId.make("m_1") }]))
        assert.strictEqual(failed._tag, "ServiceUnavailable")
        assert.deepStrictEqual(yield* conversations.list(bob), [], "nothing recorded for an entry not stored")
        // The retry found no entry and took a new seq.
        yield* db.save([message(1)], [{ user_id: bob, seq: 2, server_id: ServerId.make("m_1") }])
        assert.deepStrictEqual((yield* conversations.list(bob)).map((c) => [c.last_seq, c.unread]), [[2, 1]])
      }).pipe(Effect.provide(Db.layer.pipe(Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, inbox, ConversationStore.layerMemory)))))
    }))

  it.effect("hands history, entries and conversations to StoreWrites together, which may run them in one transaction", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const recording = Layer.succeed(StoreWrites, {
        unit: (writes) => Effect.sync(() => log.push("begin")).pipe(Effect.andThen(writes), Effect.tap(() => Effect.sync(() => log.push("end"))))
      })
      const logged = Layer.effect(
        InboxStore,
        Effect.map(Effect.service(InboxStore), (inner) => InboxStore.of({ ...inner, append: (entries) => Effect.andThen(Effect.sync(() => log.push("inbox")), inner.append(entries)) }))
      ).pipe(Layer.provide(InboxStore.layerMemory))
      const loggedHistory = Layer.effect(
        HistoryStore,
        Effect.map(Effect.service(HistoryStore), (inner) => HistoryStore.of({ ...inner, save: (messages) => Effect.andThen(Effect.sync(() => log.push("history")), inner.save(messages)) }))
      ).pipe(Layer.provide(HistoryStore.layerMemory))
      const loggedConversations = Layer.effect(
        ConversationStore,
        Effect.map(Effect.service(ConversationStore), (inner) => ConversationStore.of({ ...inner, record: (entries) => Effect.andThen(Effect.sync(() => log.push("conversations")), inner.record(entries)) }))
      ).pipe(Layer.provide(ConversationStore.layerMemory))
      yield* Effect.gen(function*() {
        const db = yield* Effect.service(Db)
        yield* db.save([message(1)], [{ user_id: bob, seq: 1, server_id: ServerId.make("m_1") }])
        assert.deepStrictEqual(log, ["begin", "history", "inbox", "conversations", "end"], "one unit, the three writes in it, in order")
        assert.strictEqual((yield* db.pull({ user: bob, after: 0, limit: 10 })).entries.length, 1)
      }).pipe(
        Effect.provide(Db.layer.pipe(Layer.provide([loggedHistory, logged, loggedConversations, recording])))
      )
    }))

  it.effect("returns the entries another save stored first, under their numbers; the conversation counts only those", () =>
    Effect.gen(function*() {
      const db = yield* Effect.service(Db)
      const conversations = yield* Effect.service(ConversationStore)
      const m = message(1)
      const counted = Effect.map(Metric.value(Metrics.inboxEntriesStored), (state) => state.count)
      const before = yield* counted
      // Two consumers took numbers for the same message (a rebalance): 1 stored first, then 2.
      assert.deepStrictEqual(yield* db.save([m], [{ user_id: bob, seq: 1, server_id: m.server_id }]), [])
      assert.strictEqual((yield* counted) - before, 1)
      assert.deepStrictEqual(yield* db.save([m], [{ user_id: bob, seq: 2, server_id: m.server_id }]), [{ user_id: bob, seq: 1, server_id: m.server_id }])
      assert.strictEqual((yield* counted) - before, 1, "the second stored nothing")
      assert.deepStrictEqual((yield* db.pull({ user: bob, after: 0, limit: 10 })).entries.map((entry) => entry.seq), [1])
      assert.deepStrictEqual((yield* conversations.list(bob)).map((c) => [c.last_seq, c.unread]), [[1, 1]], "seq 2 holds nothing and is not counted")
    }).pipe(Effect.provide(Db.layer.pipe(Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, InboxStore.layerMemory, ConversationStore.layerMemory))))))
})

describe("Db.save on standalone's stores (SqlStorage on an in-memory PGlite)", () => {
  /** StoreWrites as SqlStorage gives it, saying which way each save went. */
  const logging = (log: Array<string>) =>
    Layer.effect(
      StoreWrites,
      Effect.map(Effect.service(StoreWrites), (inner) => ({
        unit: <A, E, R>(writes: Effect.Effect<A, E, R>) => Effect.andThen(Effect.sync(() => log.push("unit")), inner.unit(writes)),
        saveAtOnce: (save: Save) => Effect.tap(inner.saveAtOnce!(save), (done) => Effect.sync(() => log.push(`at once: ${done}`)))
      }))
    )
  const database = SqlStorage.layer.pipe(Layer.provideMerge(EmbeddedPostgres.layer({ dataDir: undefined })))

  it.effect("stores a save in one statement, and a replay write by write, answering as the memory stores do", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      yield* Effect.gen(function*() {
        const db = yield* Effect.service(Db)
        const conversations = yield* Effect.service(ConversationStore)
        const m = message(1)
        assert.deepStrictEqual(yield* db.save([m], [{ user_id: bob, seq: 1, server_id: m.server_id }]), [])
        assert.deepStrictEqual(log, ["at once: true"])
        // Another consumer took seq 2 for the same message (a rebalance): stored before under 1.
        assert.deepStrictEqual(yield* db.save([m], [{ user_id: bob, seq: 2, server_id: m.server_id }]), [{ user_id: bob, seq: 1, server_id: m.server_id }])
        assert.deepStrictEqual(log, ["at once: true", "at once: false", "unit"])
        assert.deepStrictEqual((yield* db.pull({ user: bob, after: 0, limit: 10 })).entries.map((entry) => [entry.seq, entry.message]), [[1, m]])
        assert.deepStrictEqual((yield* conversations.list(bob)).map((c) => [c.last_seq, c.unread]), [[1, 1]], "seq 2 holds nothing and is not counted")
      }).pipe(Effect.provide(Db.layer.pipe(Layer.provideMerge(logging(log)), Layer.provideMerge(database))))
    }), 60_000)
})
