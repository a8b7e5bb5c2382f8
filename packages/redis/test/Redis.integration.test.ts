import type { GatewayId, UserId } from "@im/domain/Ids"
import { Presence } from "@im/ports/Presence"
import { SeqStore } from "@im/ports/SeqStore"
import { freshGatewayId, freshUserId, unique } from "@im/ports/testing/Fixtures"
import { presenceSuite } from "@im/ports/testing/PresenceSuite"
import { seqStoreSuite } from "@im/ports/testing/SeqStoreSuite"
import * as FreshDatabase from "@im/sql/testing/FreshDatabase"
import { assert, describe, it, layer } from "@effect/vitest"
import { afterAll } from "vitest"
import { ConfigProvider, type Duration, Effect, Exit, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import { deletePrefix } from "../src/RedisClient.ts"
import * as RedisPresence from "../src/RedisPresence.ts"
import * as RedisSeqStore from "../src/RedisSeqStore.ts"

// Real servers (`npm run infra:up`): Redis, and PostgreSQL for the seq floor. Each run gets a
// PostgreSQL database of its own, dropped when the file is done, and every store a key prefix
// of its own.
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const { layer: database, name: databaseName } = FreshDatabase.layer()
const shared = { memoMap: Layer.makeMemoMapUnsafe(), timeout: "60 seconds" } as const

// Presence's connection sets do not expire (a live gateway's refreshes sweep a dead one's), and
// seqs never do: every prefix this file used is deleted when it is done.
const prefixes: Array<string> = []
const freshPrefix = () => {
  const prefix = `test:${randomBytes(6).toString("hex")}:`
  prefixes.push(prefix)
  return prefix
}
afterAll(async () => {
  const redis = new Redis(redisUrl)
  for (const prefix of prefixes) await deletePrefix(redis, prefix)
  await redis.quit()
})

const seqStore = (blockSize: number, keyPrefix = freshPrefix()) =>
  Layer.effect(SeqStore, RedisSeqStore.make({ url: Redacted.make(redisUrl), keyPrefix, blockSize })).pipe(
    Layer.provide(database)
  )

const presence = (ttl: Duration.Input, keyPrefix = freshPrefix()) =>
  Layer.effect(Presence, RedisPresence.make({ url: Redacted.make(redisUrl), keyPrefix, ttl }))

/** A connection of the test's own, for what the adapters never do (lose Redis's data, read their keys), quit with the scope. */
const ownConnection = Effect.acquireRelease(
  Effect.sync(() => new Redis(redisUrl, { lazyConnect: true })),
  (redis) => Effect.promise(() => redis.quit())
)

/**
 * A presence adapter on a prefix of its own, for the tests that also read or write its keys
 * themselves: the prefix, the adapter and a connection of the test's own (quit with the scope).
 */
const ownPresence = (ttl: Duration.Input) =>
  Effect.gen(function*() {
    const keyPrefix = freshPrefix()
    const presence = yield* RedisPresence.make({ url: Redacted.make(redisUrl), keyPrefix, ttl })
    const redis = yield* ownConnection
    return { keyPrefix, presence, redis }
  })

const flushAll = Effect.scoped(Effect.flatMap(ownConnection, (redis) => Effect.promise(() => redis.flushall())))

/** Every number of every block, per user. */
const record = (
  handedOut: Map<UserId, Array<number>>,
  requests: ReadonlyArray<readonly [UserId, number]>,
  firsts: ReadonlyMap<UserId, number>
) => {
  const totals = new Map<UserId, number>()
  for (const [user, count] of requests) totals.set(user, (totals.get(user) ?? 0) + count)
  for (const [user, total] of totals) {
    const first = firsts.get(user)!
    const numbers = handedOut.get(user) ?? []
    for (let n = first; n < first + total; n++) numbers.push(n)
    handedOut.set(user, numbers)
  }
}

layer(database, { ...shared, excludeTestServices: true })(`Redis adapters (PostgreSQL ${databaseName})`, (it) => {
  it.effect("the floor lives in a real, migrated PostgreSQL database", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [row] = yield* sql<{ readonly db: string }>`SELECT current_database() AS db`
      assert.strictEqual(row!.db, databaseName)
      const tables = yield* sql<{ readonly table_name: string }>`
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`
      assert.include(tables.map((t) => t.table_name), "seq_floor")
    }))

  seqStoreSuite("redis, default block size", seqStore(1000), { ...shared, racingStartsMaySkip: 40 * 1000 })
  // Blocks smaller than most calls: every other call extends the floor.
  // 40 concurrent first calls may each reserve a block (of at most 5 here) before one takes hold.
  seqStoreSuite("redis, block size 3", seqStore(3), { ...shared, racingStartsMaySkip: 40 * 5 })
  presenceSuite("redis", presence("90 seconds"), shared)
})

describe("RedisSeqStore after Redis loses its data", () => {
  // FLUSHALL empties the whole server: these tests run one after another in this file, and no
  // other test of the project keeps state in Redis between its calls.
  layer(seqStore(5), { ...shared, excludeTestServices: true })("block size 5", (it) => {
    it.effect("new numbers are above every number handed out before, for every user", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const users = Array.from({ length: 40 }, freshUserId)
        const handedOut = new Map<UserId, Array<number>>()
        // Counts from 1 to 12 against blocks of 5: blocks run out mid-call and calls need more
        // than one block.
        for (let round = 0; round < 4; round++) {
          const requests = users.map((user, i) => [user, 1 + ((i * 7 + round * 3) % 12)] as const)
          record(handedOut, requests, yield* store.allocate(requests))
        }
        const before = new Map([...handedOut].map(([user, numbers]) => [user, Math.max(...numbers)]))

        yield* flushAll

        for (const user of users) {
          const current = yield* store.current(user)
          assert.isAtLeast(current, before.get(user)!, "current() never goes backwards")
        }
        const after = new Map<UserId, Array<number>>()
        for (let round = 4; round < 8; round++) {
          const requests = users.map((user, i) => [user, 1 + ((i * 7 + round * 3) % 12)] as const)
          record(after, requests, yield* store.allocate(requests))
        }
        for (const user of users) {
          const numbers = after.get(user)!
          assert.isAbove(Math.min(...numbers), before.get(user)!, "above every number handed out before")
          assert.strictEqual(new Set(numbers).size, numbers.length, "no number twice")
          assert.strictEqual(yield* store.current(user), Math.max(...numbers))
        }
      }))

    it.effect("a user that Redis lost is restored by allocate() too, without going back", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const user = freshUserId()
        const first = (yield* store.allocate([[user, 3]])).get(user)!
        assert.strictEqual(first, 1)
        yield* flushAll
        const next = (yield* store.allocate([[user, 2]])).get(user)!
        assert.isAbove(next, 3)
        assert.strictEqual(yield* store.current(user), next + 1)
        assert.strictEqual((yield* store.allocate([[user, 1]])).get(user), next + 2, "consecutive again")
      }))

    it.effect("concurrent calls while Redis loses its data twice never hand out a number twice", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const users = Array.from({ length: 6 }, freshUserId)
        const handedOut = new Map<UserId, Array<number>>()
        const calls = Array.from({ length: 60 }, (_, i) =>
          [[users[i % 6]!, 1 + (i % 4)], [users[(i + 1) % 6]!, 1 + (i % 7)]] as const)
        const allocations = Effect.forEach(
          calls,
          (requests, i) =>
            Effect.sleep(`${(i % 10) * 5} millis`).pipe(
              Effect.andThen(store.allocate(requests)),
              Effect.tap((firsts) => Effect.sync(() => record(handedOut, requests, firsts)))
            ),
          { concurrency: 8, discard: true }
        )
        const flushes = Effect.sleep("15 millis").pipe(
          Effect.andThen(flushAll),
          Effect.andThen(Effect.sleep("15 millis")),
          Effect.andThen(flushAll)
        )
        yield* Effect.all([allocations, flushes], { concurrency: "unbounded", discard: true })
        for (const user of users) {
          const numbers = handedOut.get(user)!
          assert.strictEqual(new Set(numbers).size, numbers.length, `no number twice for ${user}`)
          assert.isAtLeast(yield* store.current(user), Math.max(...numbers))
        }
      }))
  })
})

describe("RedisPresence after Redis lost its data", () => {
  layer(presence("90 seconds"), { ...shared, excludeTestServices: true })("a restart without persistence", (it) => {
    it.effect("refresh answers false, and the gateway's restore brings its connections back", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const gateway = freshGatewayId()
        const user = freshUserId()
        const connection = unique("c")
        yield* presence.restore(gateway, "run", [])
        yield* presence.register(user, gateway, connection)
        assert.isTrue(yield* presence.refresh(gateway, "run"))
        yield* flushAll
        assert.isFalse((yield* presence.lookup([user])).has(user), "Redis lost it")
        // A connection registered since does not make the gateway known again: the others are still lost.
        yield* presence.register(freshUserId(), gateway, unique("c"))
        assert.isFalse(yield* presence.refresh(gateway, "run"))
        yield* presence.restore(gateway, "run", [{ user, connection }])
        assert.deepStrictEqual([...((yield* presence.lookup([user])).get(user) ?? [])], [gateway])
        assert.isTrue(yield* presence.refresh(gateway, "run"))
      }))
  })
})

describe("RedisPresence, a data loss in the middle of a restore", () => {
  it.live("the restore's later calls and its end find its name gone: the gateway stays unknown", () =>
    Effect.gen(function*() {
      const { keyPrefix, presence, redis } = yield* ownPresence("90 seconds")
      const gateway = freshGatewayId()
      const keys = {
        users: RedisPresence.gatewayKeys.users(keyPrefix, gateway),
        restoring: RedisPresence.gatewayKeys.restoring(keyPrefix, gateway),
        known: RedisPresence.gatewayKeys.known(keyPrefix, gateway),
        alive: RedisPresence.gatewayKeys.alive(keyPrefix, gateway),
        all: RedisPresence.gatewayKeys.all(keyPrefix)
      }
      const { KNOWN, RESTORE } = RedisPresence.restoreScripts
      const restoreCall = (first: "1" | "0", user: string) =>
        Effect.promise(() => redis.eval(RESTORE.lua, 5, keys.users, keys.restoring, keys.known, keys.alive, keys.all, keyPrefix, gateway, 90_000, "run", first, user, unique("c")))
      // The first call of a restore, as the adapter makes it; then Redis loses everything.
      assert.strictEqual(yield* restoreCall("1", freshUserId()), 1)
      yield* flushAll
      assert.strictEqual(yield* restoreCall("0", freshUserId()), 0, "a later call of the same restore")
      assert.strictEqual(yield* Effect.promise(() => redis.eval(KNOWN.lua, 3, keys.restoring, keys.known, keys.alive, "run", 90_000)), 0, "its end")
      assert.isFalse(yield* presence.refresh(gateway, "run"))
    }).pipe(Effect.scoped))
})

describe("RedisPresence expiry", () => {
  layer(presence("400 millis"), { ...shared, excludeTestServices: true })("TTL 400 ms", (it) => {
    it.effect("entries of a gateway that stops refreshing stop counting; a refreshed gateway's stay", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const user = freshUserId()
        const [alive, dead] = [freshGatewayId(), freshGatewayId()]
        yield* presence.restore(alive, "run", [{ user, connection: unique("c") }])
        yield* presence.register(user, dead, unique("c"))
        const gatewaysOf = (found: ReadonlyMap<UserId, ReadonlyArray<GatewayId>>) => [...(found.get(user) ?? [])].sort()
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user])), [alive, dead].sort())
        for (let i = 0; i < 8; i++) {
          yield* Effect.sleep("100 millis")
          assert.isTrue(yield* presence.refresh(alive, "run"))
        }
        assert.deepStrictEqual(gatewaysOf(yield* presence.lookup([user])), [alive], "800 ms later")
        yield* Effect.sleep("600 millis")
        assert.isFalse((yield* presence.lookup([user])).has(user), "without refreshes nothing counts")
      }))

    it.effect("a gateway that lapsed answers false (a sweep may have taken its entries), even after a register revived it", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const [quiet, revived] = [freshGatewayId(), freshGatewayId()]
        yield* presence.restore(quiet, "run", [{ user: freshUserId(), connection: unique("c") }])
        yield* presence.restore(revived, "run", [{ user: freshUserId(), connection: unique("c") }])
        yield* Effect.sleep("600 millis")
        yield* presence.register(freshUserId(), revived, unique("c"))
        assert.isFalse(yield* presence.refresh(quiet, "run"))
        assert.isFalse(yield* presence.refresh(revived, "run"))
      }))

    it.effect("a refresh that answers false does not bring a lapsed run's entries back", () =>
      Effect.gen(function*() {
        const presence = yield* Presence
        const [gateway, user] = [freshGatewayId(), freshUserId()]
        yield* presence.restore(gateway, "old", [{ user, connection: unique("c") }])
        yield* Effect.sleep("600 millis")
        assert.isFalse(yield* presence.refresh(gateway, "new"))
        assert.isFalse((yield* presence.lookup([user])).has(user))
      }))
  })
})

describe("RedisPresence after a version that gave the sets a TTL", () => {
  it.live("a register or restore keeps a user's set of gateways that the old version would let expire", () =>
    Effect.gen(function*() {
      const { keyPrefix, presence, redis } = yield* ownPresence("90 seconds")
      const [registered, restored] = [freshUserId(), freshUserId()]
      const gateway = freshGatewayId()
      // What a gateway of the version before left: its users' sets of gateways, expiring.
      for (const user of [registered, restored]) {
        yield* Effect.promise(() => redis.sadd(`${keyPrefix}presence:u:${user}`, "ws-old"))
        yield* Effect.promise(() => redis.pexpire(`${keyPrefix}presence:u:${user}`, 300))
      }
      yield* presence.restore(gateway, "run", [{ user: restored, connection: unique("c") }])
      yield* presence.register(registered, gateway, unique("c"))
      yield* Effect.sleep("500 millis")
      const found = yield* presence.lookup([registered, restored])
      assert.deepStrictEqual([found.get(registered), found.get(restored)], [[gateway], [gateway]])
    }).pipe(Effect.scoped))
})

describe("RedisPresence, what a dead gateway left", () => {
  it.live("the other gateways' refreshes remove it, in chunks, and nothing of it is left", () =>
    Effect.gen(function*() {
      const { keyPrefix, presence, redis } = yield* ownPresence("400 millis")
      const [alive, dead] = [freshGatewayId(), freshGatewayId()]
      const shared = freshUserId()
      // More users than one refresh removes, and one on both gateways.
      const users = [shared, ...Array.from({ length: 700 }, () => freshUserId())]
      yield* presence.restore(dead, "run", users.map((user) => ({ user, connection: unique("c") })))
      yield* presence.restore(alive, "run", [{ user: shared, connection: unique("c") }])
      const keysOf = (gateway: GatewayId) =>
        Effect.promise(() => redis.keys(`${keyPrefix}*`)).pipe(Effect.map((keys) => keys.filter((key) => key.includes(gateway))))
      assert.isAbove((yield* keysOf(dead)).length, 700)
      // The dead gateway lapses (its TTL is 400 ms); restores, which remove nothing, keep the alive one alive.
      const deadUsers = () => Effect.promise(() => redis.scard(RedisPresence.gatewayKeys.users(keyPrefix, dead)))
      for (let i = 0; i < 6; i++) {
        yield* Effect.sleep("100 millis")
        yield* presence.restore(alive, "run", [{ user: shared, connection: unique("c") }])
      }
      assert.strictEqual(yield* deadUsers(), 701, "nothing swept yet")
      assert.isTrue(yield* presence.refresh(alive, "run"))
      assert.strictEqual(yield* deadUsers(), 201, "one refresh removes 500 users' entries")
      assert.isTrue(yield* presence.refresh(alive, "run"))
      assert.deepStrictEqual(yield* keysOf(dead), [], "no key names the dead gateway")
      assert.deepStrictEqual(yield* Effect.promise(() => redis.smembers(`${keyPrefix}presence:u:${shared}`)), [alive])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.smembers(RedisPresence.gatewayKeys.all(keyPrefix))), [alive])
      assert.deepStrictEqual([...((yield* presence.lookup([shared])).get(shared) ?? [])], [alive])
    }).pipe(Effect.scoped))
})

describe("start-up without a server", () => {
  it.live("fails within the bounded wait, naming REDIS_URL", () =>
    Effect.gen(function*() {
      const exit = yield* RedisPresence.layer.pipe(
        Layer.build,
        Effect.scoped,
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          REDIS_URL: "redis://127.0.0.1:1",
          REDIS_CONNECT_TIMEOUT: "1 second"
        }))),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(exit), /REDIS_URL=redis:\/\/127\.0\.0\.1:1/)
    }), 10_000)
})
