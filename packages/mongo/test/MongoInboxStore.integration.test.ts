import { ServerId, UserId } from "@im/domain/Ids"
import { InboxStore } from "@im/ports/InboxStore"
import { inboxStoreSuite } from "@im/ports/testing/InboxStoreSuite"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Layer } from "effect"
import { MongoClient } from "mongodb"
import { randomBytes } from "node:crypto"
import * as MongoInboxStore from "../src/MongoInboxStore.ts"

// A MongoDB-wire server (`npm run infra:up` starts FerretDB; docker compose starts MongoDB).
// Each run works in a database of its own, dropped when the file is done.
const url = process.env["MONGO_URL"] ?? "mongodb://127.0.0.1:27017"
const database = `im_test_${randomBytes(6).toString("hex")}`

/** Drops the run's database on release, with a client of its own. */
const droppedAfterwards = Layer.effectDiscard(
  Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const client = await new MongoClient(url, { serverSelectionTimeoutMS: 5_000 }).connect()
      try {
        await client.db(database).dropDatabase()
      } finally {
        await client.close()
      }
    }).pipe(Effect.ignore)
  )
)

const store = MongoInboxStore.layer.pipe(
  Layer.provideMerge(droppedAfterwards),
  Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ MONGO_URL: url, MONGO_DB: database })))
)
const shared = { memoMap: Layer.makeMemoMapUnsafe(), timeout: "60 seconds" } as const

inboxStoreSuite(`mongo (${database})`, store, shared)

layer(store, { ...shared, excludeTestServices: true })("MongoInboxStore on a MongoDB-wire server", (it) => {
  it.effect("appending the same entry twice stores one document", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const user = UserId.make(`u-${randomBytes(8).toString("hex")}`)
      const entry = { user_id: user, seq: 1, server_id: ServerId.make(`s-${randomBytes(8).toString("hex")}`) }
      yield* inbox.append([entry])
      yield* inbox.append([entry])
      yield* inbox.append([entry, entry])
      const documents = yield* Effect.promise(async () => {
        const client = await new MongoClient(url).connect()
        try {
          return await client.db(database).collection("inbox").find({ user_id: user }, { projection: { _id: 0 } }).toArray()
        } finally {
          await client.close()
        }
      })
      assert.deepStrictEqual<unknown>(documents, [{ user_id: user, seq: 1, server_id: entry.server_id }])
    }))

  it.effect("the unique indexes exist, and a taken number is refused as non-retryable", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const user = UserId.make(`u-${randomBytes(8).toString("hex")}`)
      yield* inbox.append([{ user_id: user, seq: 1, server_id: ServerId.make("s-first") }])
      const exit = yield* Effect.exit(inbox.append([{ user_id: user, seq: 1, server_id: ServerId.make("s-intruder") }]))
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(inbox.append([{ user_id: user, seq: 1, server_id: ServerId.make("s-intruder") }]))
      assert.strictEqual(error._tag, "PortError")
      assert.isFalse(error.retryable)
      const indexes = yield* Effect.promise(async () => {
        const client = await new MongoClient(url).connect()
        try {
          return await client.db(database).collection("inbox").indexes()
        } finally {
          await client.close()
        }
      })
      const unique = indexes.filter((index) => index.unique === true).map((index) => JSON.stringify(index.key)).sort()
      assert.deepStrictEqual(unique, [JSON.stringify({ user_id: 1, seq: 1 }), JSON.stringify({ user_id: 1, server_id: 1 })])
    }))

  // FerretDB 1.24 filters with JSONB containment, which its own indexes cannot serve; the local
  // stack adds one that can (scripts/infra/mongo/inbox-index.sql). Without it every read scanned
  // the whole collection: 0.7 s a pull at 2.3 million entries, and the cluster tests timed out.
  it.effect("a user's reads are served by an index, not by a scan of the whole collection", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const id = randomBytes(8).toString("hex")
      const users = Array.from({ length: 500 }, (_, i) => UserId.make(`x${i}-${id}`))
      yield* inbox.append(users.flatMap((user_id) =>
        Array.from({ length: 10 }, (_, k) => ({ user_id, seq: k + 1, server_id: ServerId.make(`${user_id}-m${k}`) }))
      ))
      const plans = yield* Effect.promise(async () => {
        const client = await new MongoClient(url).connect()
        try {
          const collection = client.db(database).collection("inbox")
          return [
            await collection.find({ user_id: users[7] }).sort({ seq: -1 }).limit(1).explain(),
            await collection.find({ user_id: users[7], seq: { $gt: 3 } }).sort({ seq: 1 }).limit(5).explain()
          ].map((plan) => JSON.stringify(plan.queryPlanner))
        } finally {
          await client.close()
        }
      })
      for (const plan of plans) {
        // MongoDB names a full scan COLLSCAN; FerretDB shows PostgreSQL's plan.
        assert.notMatch(plan, /COLLSCAN|Seq Scan/, plan)
        assert.match(plan, /IXSCAN|Index Scan/, plan)
      }
      assert.strictEqual(yield* inbox.newest(users[7]!), 10)
    }), 30_000)

  it.effect("a group's entries are found one query per message, each served by an index", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const id = randomBytes(8).toString("hex")
      const members = Array.from({ length: 200 }, (_, i) => UserId.make(`g${i}-${id}`))
      const messages = Array.from({ length: 3 }, (_, k) => ServerId.make(`gm${k}-${id}`))
      // The first two messages reached every member; the third is not stored.
      const stored = messages.slice(0, 2).flatMap((server_id, k) => members.map((user_id) => ({ user_id, seq: k + 1, server_id })))
      yield* inbox.append(stored)
      const asked = messages.flatMap((server_id) => members.map((user_id) => ({ user_id, server_id })))
      const found = yield* inbox.find([...asked, { user_id: UserId.make(`stranger-${id}`), server_id: messages[0]! }])
      const key = (ref: { readonly user_id: string; readonly server_id: string }) => `${ref.user_id} ${ref.server_id}`
      assert.deepStrictEqual(found.map(key).sort(), stored.map(key).sort())
      assert.deepStrictEqual(
        found.find((ref) => ref.user_id === members[5] && ref.server_id === messages[1]),
        { user_id: members[5], seq: 2, server_id: messages[1] }
      )
      const plan = yield* Effect.promise(async () => {
        const client = await new MongoClient(url).connect()
        try {
          const collection = client.db(database).collection("inbox")
          return JSON.stringify((await collection.find({ server_id: messages[0], user_id: { $in: members } }).explain()).queryPlanner)
        } finally {
          await client.close()
        }
      })
      assert.notMatch(plan, /COLLSCAN|Seq Scan/, plan)
      assert.match(plan, /IXSCAN|Index Scan/, plan)
    }), 30_000)
})

/**
 * Two writers appending one batch at once (two consumers in a Kafka rebalance), each with numbers
 * of its own: "early" took 1 and 2 for a user's messages m1 and m2, "late" took 11 and 12.
 */
layer(store, { ...shared, excludeTestServices: true })("MongoInboxStore with two writers of one batch", (it) => {
  const setUp = () => {
    const id = randomBytes(8).toString("hex")
    const user = UserId.make(`u-${id}`)
    const other = UserId.make(`o-${id}`)
    const [m1, m2] = [ServerId.make(`m1-${id}`), ServerId.make(`m2-${id}`)]
    const entry = (user_id: UserId, seq: number, server_id: ServerId) => ({ user_id, seq, server_id })
    return { user, other, m1, m2, entry }
  }

  it.effect("the writer with the earlier numbers leaves the user's later entries to the other, and waits for them", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const { entry, m1, m2, other, user } = setUp()
      // "late" stored m1 first; "early" comes to m1, finds it under 11, and must not store m2 under 2.
      yield* inbox.append([entry(user, 11, m1)])
      const early = yield* Effect.forkChild(inbox.append([entry(user, 1, m1), entry(user, 2, m2), entry(other, 5, m2)]))
      yield* Effect.sleep("300 millis")
      assert.isUndefined(early.pollUnsafe(), "still waiting for m2")
      assert.deepStrictEqual(yield* inbox.find([{ user_id: user, server_id: m2 }]), [], "not stored under 2")
      yield* inbox.append([entry(user, 12, m2)])
      const earlier = yield* Fiber.join(early)
      assert.deepStrictEqual(
        [...earlier].sort((a, b) => a.seq - b.seq),
        [entry(user, 11, m1), entry(user, 12, m2)],
        "pushed under the numbers they are stored with"
      )
      assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 10 }), [entry(user, 11, m1), entry(user, 12, m2)], "in order")
      assert.deepStrictEqual(yield* inbox.range({ user: other, after: 0, limit: 10 }), [entry(other, 5, m2)], "other users as usual")
    }))

  it.effect("what the other writer never stores fails the append, retryably, and stores none of it", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const { entry, m1, m2, user } = setUp()
      yield* inbox.append([entry(user, 11, m1)])
      const error = yield* Effect.flip(inbox.append([entry(user, 1, m1), entry(user, 2, m2)]))
      assert.isTrue(error.retryable)
      assert.include(String(error.cause), "left to another writer")
      assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 10 }), [entry(user, 11, m1)])
    }), 30_000)

  it.effect("a user's long run stops at the other writer's message, past FerretDB's batches of 100", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const { entry, user } = setUp()
      const messages = Array.from({ length: 150 }, (_, i) => ServerId.make(`${user}-m${i}`))
      yield* inbox.append([entry(user, 1003, messages[3]!)])
      const error = yield* Effect.flip(inbox.append(messages.map((m, i) => entry(user, i + 1, m))))
      assert.isTrue(error.retryable)
      const stored = yield* inbox.range({ user, after: 0, limit: 200 })
      assert.deepStrictEqual(stored.map((ref) => ref.seq), [1, 2, 3, 1003], "none after the other writer's message")
    }), 30_000)

  it.effect("the writer with the later numbers goes on past what the other stored", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      const { entry, m1, m2, user } = setUp()
      yield* inbox.append([entry(user, 1, m1)])
      assert.deepStrictEqual(yield* inbox.append([entry(user, 11, m1), entry(user, 12, m2)]), [entry(user, 1, m1)])
      assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 10 }), [entry(user, 1, m1), entry(user, 12, m2)])
    }))

  it.effect("racing in earnest, the two writers leave every inbox in message order", () =>
    Effect.gen(function*() {
      const inbox = yield* InboxStore
      // Many users of a few entries share lanes; a few of many entries take turns chunk by chunk.
      // FerretDB runs the two writers' inserts mostly one after the other, so this rarely meets the
      // stop the tests above pin down (it passes without it); it fails when a run's order breaks
      // outright, e.g. with inserts larger than FerretDB's batches.
      const shapes = [[20, 10], [3, 250]] as const
      for (let round = 0; round < 6; round++) {
        const [userCount, messageCount] = shapes[round % 2]!
        const id = randomBytes(8).toString("hex")
        const users = Array.from({ length: userCount }, (_, i) => UserId.make(`r${i}-${id}`))
        const messages = Array.from({ length: messageCount }, (_, k) => ServerId.make(`m${k}-${id}`))
        const batch = (base: number) => messages.flatMap((server_id, k) => users.map((user_id) => ({ user_id, seq: base + k, server_id })))
        yield* Effect.all([inbox.append(batch(1)), inbox.append(batch(1001))], { concurrency: 2 })
        for (const user of users) {
          const stored = yield* inbox.range({ user, after: 0, limit: 1000 })
          assert.deepStrictEqual(stored.map((ref) => ref.server_id), messages, `${user}: each message once, in order`)
        }
      }
    }), 60_000)
})
