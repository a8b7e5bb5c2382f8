import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as CachedGroupStore from "../src/CachedGroupStore.ts"
import { GroupMemberCache } from "../src/GroupMemberCache.ts"
import { GroupStore } from "../src/GroupStore.ts"
import { PortError } from "../src/PortError.ts"
import { freshGroupId, freshUserId } from "../testing/Fixtures.ts"
import { groupMemberCacheSuite } from "../testing/GroupMemberCacheSuite.ts"

// A cache of its own per suite: nothing else touches it, so a cached read loads exactly once.
groupMemberCacheSuite("memory", GroupMemberCache.layerMemory({ ttl: "1 second", maxGroups: 10_000 }), {
  ttlMillis: 1_000,
  runs: 100
})

describe("CachedGroupStore when the cache fails", () => {
  const broken = (operation: string) => Effect.fail(new PortError({ port: "GroupMemberCache", operation, retryable: true }))
  const failing = GroupMemberCache.of({
    members: () => broken("members"),
    role: () => broken("role"),
    fill: () => broken("fill"),
    invalidate: () => broken("invalidate")
  })

  it.effect("reads go to the store", () =>
    Effect.gen(function*() {
      const inner = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
      const owner = freshUserId()
      const group = freshGroupId()
      yield* inner.create({ id: group, name: "g", owner_id: owner, created_at: 1, join_approval: false }, [
        { user_id: owner, role: "owner", joined_at: 1 }
      ])
      const cached = CachedGroupStore.make(inner, failing)
      assert.deepStrictEqual(yield* cached.role(group, owner), Option.some("owner" as const))
      assert.deepStrictEqual(yield* cached.members(group), yield* inner.members(group))
    }))

  it.effect("a write that could not invalidate fails, though the store has it", () =>
    Effect.gen(function*() {
      const inner = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
      const owner = freshUserId()
      const group = freshGroupId()
      const cached = CachedGroupStore.make(inner, failing)
      const error = yield* Effect.flip(
        cached.create({ id: group, name: "g", owner_id: owner, created_at: 1, join_approval: false }, [
          { user_id: owner, role: "owner", joined_at: 1 }
        ])
      )
      assert.strictEqual(error.operation, "invalidate")
      assert.isTrue(Option.isSome(yield* inner.get(group)))
    }))
})
