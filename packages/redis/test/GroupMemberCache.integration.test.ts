import type { GroupMember } from "@im/domain/Group"
import * as CachedGroupStore from "@im/ports/CachedGroupStore"
import { GroupMemberCache } from "@im/ports/GroupMemberCache"
import { GroupStore } from "@im/ports/GroupStore"
import { freshGroupId, freshUserId } from "@im/ports/testing/Fixtures"
import { groupMemberCacheSuite } from "@im/ports/testing/GroupMemberCacheSuite"
import { instrumentLoads } from "@im/ports/testing/InstrumentedLoads"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Fiber, Layer, Option, Redacted } from "effect"
import { Redis } from "ioredis"
import { randomBytes } from "node:crypto"
import * as RedisGroupMemberCache from "../src/RedisGroupMemberCache.ts"

// A real Redis (`npm run infra:up`). Every cache gets a key prefix of its own. Another test
// file may FLUSHALL the server while this one runs: that makes a cached group cold, which the
// suite allows for (a spare load or two), and never makes a read wrong.
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const shared = { timeout: "30 seconds" } as const

const freshPrefix = () => `test:${randomBytes(6).toString("hex")}:`

const cache = (ttl: Duration.Input, keyPrefix = freshPrefix()) =>
  RedisGroupMemberCache.make({ url: Redacted.make(redisUrl), keyPrefix, ttl })

groupMemberCacheSuite("redis", Layer.effect(GroupMemberCache, cache("1 second")), {
  ...shared,
  ttlMillis: 1_000,
  runs: 25,
  spareLoads: 2
})

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

const member = (user_id: GroupMember["user_id"], role: GroupMember["role"] = "member", joined_at = 1): GroupMember => ({
  user_id,
  role,
  joined_at
})

describe("RedisGroupMemberCache across processes", () => {
  it.live("a writer on one connection and a reader on another: a load that raced the write is not cached", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const inner = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
      // The reader's store holds its load between reading and caching until the write is done.
      const loaded = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const { load, state } = instrumentLoads()
      const heldStore = GroupStore.of({
        ...inner,
        members: (id) => load(inner.members(id))
      })
      const writer = CachedGroupStore.make(inner, yield* cache("1 minute", prefix))
      const reader = CachedGroupStore.make(heldStore, yield* cache("1 minute", prefix))
      const [owner, a] = [freshUserId(), freshUserId()]
      const group = freshGroupId()
      yield* writer.create({ id: group, name: "g", owner_id: owner, created_at: 1, join_approval: false }, [
        member(owner, "owner"),
        member(a)
      ])
      state.hold = { loaded, release }
      const read = yield* Effect.forkChild(reader.members(group))
      yield* Deferred.await(loaded)
      yield* writer.setRole(group, a, "admin")
      yield* Deferred.succeed(release, undefined)
      assert.deepStrictEqual((yield* Fiber.join(read)).map((m) => m.role), ["owner", "member"])
      assert.deepStrictEqual(yield* reader.role(group, a), Option.some("admin" as const))
      assert.deepStrictEqual(yield* reader.members(group), yield* inner.members(group))
    }).pipe(Effect.scoped), 30_000)

  it.live("after Redis loses the keys, reads load again and agree with the store", () =>
    Effect.gen(function*() {
      const prefix = freshPrefix()
      const inner = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
      const writer = CachedGroupStore.make(inner, yield* cache("1 minute", prefix))
      const reader = CachedGroupStore.make(inner, yield* cache("1 minute", prefix))
      const [owner, a, b] = [freshUserId(), freshUserId(), freshUserId()]
      const group = freshGroupId()
      yield* writer.create({ id: group, name: "g", owner_id: owner, created_at: 1, join_approval: false }, [member(owner, "owner")])
      assert.deepStrictEqual(yield* reader.role(group, a), Option.none())
      assert.isAbove(yield* loseKeys(prefix), 0)
      yield* writer.addMembers(group, [member(a, "member", 2)])
      assert.deepStrictEqual(yield* reader.role(group, a), Option.some("member" as const))
      assert.isAbove(yield* loseKeys(prefix), 0)
      // A write with no cache entry nor version around, then reads.
      yield* writer.addMembers(group, [member(b, "member", 3)])
      assert.deepStrictEqual(yield* reader.members(group), yield* inner.members(group))
    }).pipe(Effect.scoped), 30_000)

  it.live("a group of 2,000 members round-trips in order", () =>
    Effect.gen(function*() {
      const redisCache = yield* cache("1 minute")
      const group = freshGroupId()
      const members = Array.from({ length: 2_000 }, (_, i) => member(freshUserId(), i === 0 ? "owner" : i < 5 ? "admin" : "member", 7))
      const miss = yield* redisCache.members(group)
      if (miss._tag !== "Miss") return assert.fail("expected a miss")
      assert.isTrue(yield* redisCache.fill(group, miss.version, members))
      assert.deepStrictEqual(yield* redisCache.members(group), { _tag: "Hit", value: members })
      assert.deepStrictEqual(yield* redisCache.role(group, members[3]!.user_id), { _tag: "Hit", value: Option.some("admin" as const) })
    }).pipe(Effect.scoped), 30_000)
})
