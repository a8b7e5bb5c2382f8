import { ServerId, UserId } from "@im/domain/Ids"
import { InboxStore } from "@im/ports/InboxStore"
import { inboxStoreSuite } from "@im/ports/testing/InboxStoreSuite"
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
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
})
