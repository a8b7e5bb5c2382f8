import type { UserId } from "@im/domain/Ids"
import { BlockCache } from "@im/ports/BlockCache"
import * as CachedFriendStore from "@im/ports/CachedFriendStore"
import { FriendStore } from "@im/ports/FriendStore"
import { blockCacheSuite } from "@im/ports/testing/BlockCacheSuite"
import { freshUserId } from "@im/ports/testing/Fixtures"
import { instrumentLoads } from "@im/ports/testing/InstrumentedLoads"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber, Layer, Redacted } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import * as RedisBlockCache from "../src/RedisBlockCache.ts"

// A real Redis (`npm run infra:up`). Every cache gets a key prefix of its own. Another test
// file may FLUSHALL the server while this one runs: that makes a cached user cold, which the
// suite allows for (a spare load or two), and never makes a check wrong.
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const shared = { timeout: "30 seconds" } as const

const freshPrefix = () => `test:${randomBytes(6).toString("hex")}:`

const cache = (ttl: Duration.Input, keyPrefix = freshPrefix()) => RedisBlockCache.make({ url: Redacted.make(redisUrl), keyPrefix, ttl })

blockCacheSuite("redis", Layer.effect(BlockCache, cache("1 second")), { ...shared, ttlMillis: 1_000, runs: 25, spareLoads: 2 })

/** Deletes this prefix's keys, as if Redis had lost its data (FLUSHALL would hit other tests). */
const loseKeys = (prefix: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Redis(redisUrl, { lazyConnect: true })),
    (redis) =>
      Effect.promise(async () => {
        const keys = await redis.keys(`${prefix}*`)
        if (keys.length > 0) await redis.del(...keys)
        return keys.length
      }),
    (redis) => Effect.promise(() => redis.quit())
  )

const blocks = (store: FriendStore["Service"], blocker: UserId, blocked: UserId) =>
  Effect.map(store.blocking([{ blocker, blocked }]), (found) => found.length === 1)

describe("RedisBlockCache across processes", () => {
  it.live("a writer (api) on one connection and a checker (chat) on another: a block shows at the next check, a load that raced it is not cached", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const inner = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
      // The checker's store holds its load between reading and caching until the write is done.
      const loaded = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const { load, state } = instrumentLoads()
      const heldStore = FriendStore.of({
        ...inner,
        blockedBy: (blockers) => load(inner.blockedBy(blockers))
      })
      const api = CachedFriendStore.make(inner, yield* cache("1 minute", prefix))
      const chat = CachedFriendStore.make(heldStore, yield* cache("1 minute", prefix))
      const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
      assert.isFalse(yield* blocks(chat, alice, bob))
      yield* api.block(alice, bob, 1)
      assert.isTrue(yield* blocks(chat, alice, bob))
      yield* api.unblock(alice, bob, 2)
      assert.isFalse(yield* blocks(chat, alice, bob))

      state.hold = { loaded, release }
      const check = yield* Effect.forkChild(blocks(chat, carol, alice))
      yield* Deferred.await(loaded)
      yield* api.block(carol, alice, 3)
      yield* Deferred.succeed(release, undefined)
      assert.isFalse(yield* Fiber.join(check), "it loaded before the block")
      assert.isTrue(yield* blocks(chat, carol, alice))
    }).pipe(Effect.scoped), 30_000)

  it.live("after Redis loses the keys, checks load again and agree with the store", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const inner = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
      const api = CachedFriendStore.make(inner, yield* cache("1 minute", prefix))
      const chat = CachedFriendStore.make(inner, yield* cache("1 minute", prefix))
      const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
      yield* api.block(alice, bob, 1)
      assert.isTrue(yield* blocks(chat, alice, bob))
      assert.isAbove(yield* loseKeys(prefix), 0)
      yield* api.block(alice, carol, 2)
      assert.isTrue(yield* blocks(chat, alice, carol))
      assert.isAbove(yield* loseKeys(prefix), 0)
      // A write with no cache entry nor version around, then checks.
      yield* api.unblock(alice, bob, 3)
      assert.deepStrictEqual(
        yield* chat.blocking([{ blocker: alice, blocked: bob }, { blocker: alice, blocked: carol }]),
        [{ blocker: alice, blocked: carol }]
      )
    }).pipe(Effect.scoped), 30_000)

  it.live("a user who blocked 2,000 users round-trips, and one lookup answers many blockers and pairs", () =>
    Effect.gen(function*() {
      const redisCache = yield* cache("1 minute")
      const [alice, bob] = [freshUserId(), freshUserId()]
      const blocked = Array.from({ length: 2_000 }, () => freshUserId())
      const [miss] = yield* redisCache.lookup([{ blocker: alice, blocked: bob }])
      if (miss?._tag !== "Miss") return assert.fail("expected a miss")
      assert.isTrue(yield* redisCache.fill(alice, miss.version, blocked))
      const pairs = [...blocked.slice(0, 300), bob, blocked[1_999]!, bob].map((user) => ({ blocker: alice, blocked: user }))
      const found = yield* redisCache.lookup([...pairs, { blocker: bob, blocked: alice }])
      assert.deepStrictEqual(
        found.map((lookup) => (lookup._tag === "Hit" ? lookup.value : "miss")),
        [...Array.from({ length: 300 }, () => true), false, true, false, "miss"]
      )
    }).pipe(Effect.scoped), 30_000)
})
