import type { Group, GroupMember } from "@im/domain/Group"
import type { UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { GroupStore } from "../src/GroupStore.ts"
import { freshGroupId, freshUserId } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const member = (user_id: UserId, role: GroupMember["role"] = "member", joined_at = 1): GroupMember => ({ user_id, role, joined_at })

const makeGroup = (owner: UserId): Group => ({ id: freshGroupId(), name: "a group 👋", owner_id: owner, created_at: 1_700_000_000_000 })

/** The GroupStore contract: groups, members with roles, membership changes, a user's groups. */
export const groupStoreSuite = (name: string, adapter: Layer.Layer<GroupStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`GroupStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("creates a group with its members and roles, in the order they joined", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const [owner, a, b] = [freshUserId(), freshUserId(), freshUserId()]
        const group = makeGroup(owner)
        const members = [member(owner, "owner", 1), member(a, "admin", 2), member(b, "member", 3)]
        yield* groups.create(group, members)
        assert.deepStrictEqual(yield* groups.get(group.id), Option.some(group))
        assert.deepStrictEqual(yield* groups.members(group.id), members)
        assert.deepStrictEqual(yield* groups.role(group.id, a), Option.some("admin" as const))
        assert.deepStrictEqual(yield* groups.role(group.id, freshUserId()), Option.none())
        assert.deepStrictEqual(yield* groups.get(freshGroupId()), Option.none())
        assert.deepStrictEqual(yield* groups.members(freshGroupId()), [])
      }))

    it.effect("adds only new members, removes one, and knows each user's groups", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const [owner, a, b] = [freshUserId(), freshUserId(), freshUserId()]
        const first = makeGroup(owner)
        const second = makeGroup(a)
        yield* groups.create(first, [member(owner, "owner")])
        yield* groups.create(second, [member(a, "owner")])
        assert.deepStrictEqual(yield* groups.addMembers(first.id, [member(a, "member", 2), member(owner, "member", 2), member(b, "member", 2)]), [a, b])
        assert.deepStrictEqual(yield* groups.role(first.id, owner), Option.some("owner" as const), "an add keeps an existing role")
        assert.deepStrictEqual([...(yield* groups.groupsOf(a))].map((g) => g.id).sort(), [first.id, second.id].sort())
        assert.isTrue(yield* groups.removeMember(first.id, b))
        assert.isFalse(yield* groups.removeMember(first.id, b))
        assert.deepStrictEqual((yield* groups.members(first.id)).map((m) => m.user_id).sort(), [owner, a].sort())
        assert.deepStrictEqual(yield* groups.groupsOf(b), [])
      }))

    it.effect("holds large groups", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const owner = freshUserId()
        const group = makeGroup(owner)
        const many = Array.from({ length: 600 }, (_, i) => member(freshUserId(), "member", i + 2))
        yield* groups.create(group, [member(owner, "owner", 1), ...many.slice(0, 300)])
        assert.strictEqual((yield* groups.addMembers(group.id, many)).length, 300)
        assert.strictEqual((yield* groups.members(group.id)).length, 601)
      }))
  })
