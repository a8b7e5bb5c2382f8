import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { BlockCache } from "../src/BlockCache.ts"
import * as CachedFriendStore from "../src/CachedFriendStore.ts"
import { FriendStore } from "../src/FriendStore.ts"
import { PortError } from "../src/PortError.ts"
import { blockCacheSuite } from "../testing/BlockCacheSuite.ts"
import { freshUserId } from "../testing/Fixtures.ts"

// A cache of its own per suite: nothing else touches it, so a cached check loads exactly once.
blockCacheSuite("memory", BlockCache.layerMemory({ ttl: "1 second", maxUsers: 10_000 }), { ttlMillis: 1_000, runs: 100 })

describe("BlockCache in memory", () => {
  it.effect("past maxUsers entries the oldest goes first", () =>
    Effect.gen(function*() {
      const cache = yield* Effect.provide(Effect.service(BlockCache), BlockCache.layerMemory({ ttl: "1 minute", maxUsers: 2 }))
      const [a, b, c, other] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
      for (const user of [a, b, c]) {
        const [miss] = yield* cache.lookup([{ blocker: user, blocked: other }])
        if (miss?._tag !== "Miss") return assert.fail("expected a miss")
        assert.isTrue(yield* cache.fill(user, miss.version, [other]))
      }
      const found = yield* cache.lookup([a, b, c].map((blocker) => ({ blocker, blocked: other })))
      assert.deepStrictEqual(found.map((lookup) => lookup._tag), ["Miss", "Hit", "Hit"])
    }))
})

describe("CachedFriendStore when the cache fails", () => {
  const broken = (operation: string) => Effect.fail(new PortError({ port: "BlockCache", operation, retryable: true }))
  const failing = BlockCache.of({
    lookup: () => broken("lookup"),
    fill: () => broken("fill"),
    invalidate: () => broken("invalidate")
  })

  it.effect("checks go to the store", () =>
    Effect.gen(function*() {
      const inner = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
      const [alice, bob] = [freshUserId(), freshUserId()]
      yield* inner.block(alice, bob, 1)
      const cached = CachedFriendStore.make(inner, failing)
      const pairs = [{ blocker: alice, blocked: bob }, { blocker: bob, blocked: alice }]
      assert.deepStrictEqual(yield* cached.blocking(pairs), [pairs[0]])
    }))

  it.effect("a block that could not invalidate fails, though the store has it", () =>
    Effect.gen(function*() {
      const inner = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
      const [alice, bob] = [freshUserId(), freshUserId()]
      const cached = CachedFriendStore.make(inner, failing)
      const error = yield* Effect.flip(cached.block(alice, bob, 1))
      assert.strictEqual(error.operation, "invalidate")
      assert.strictEqual((yield* inner.blocking([{ blocker: alice, blocked: bob }])).length, 1)
    }))
})
