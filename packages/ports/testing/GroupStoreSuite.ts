import { type Group, type GroupMember, type JoinRequest, JoinRequestId } from "@im/domain/Group"
import type { UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { GroupStore } from "../src/GroupStore.ts"
import { freshGroupId, freshUserId, unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const member = (user_id: UserId, role: GroupMember["role"] = "member", joined_at = 1): GroupMember => ({ user_id, role, joined_at })

const makeGroup = (owner: UserId, join_approval = false): Group => ({
  id: freshGroupId(),
  name: "a group 👋",
  owner_id: owner,
  created_at: 1_700_000_000_000,
  join_approval
})

const joinRequest = (group: Group, user: UserId, created_at = 1, message?: string): JoinRequest => ({
  id: JoinRequestId.make(unique("jr")),
  group_id: group.id,
  user_id: user,
  ...(message === undefined ? {} : { message }),
  status: "pending",
  created_at
})

const ids = (members: ReadonlyArray<GroupMember>) => members.map((m) => m.user_id).sort()
const roles = (members: ReadonlyArray<GroupMember>) => Object.fromEntries(members.map((m) => [m.user_id, m.role]))

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

    it.effect("keeps the group's info and changes only what a patch names; null removes", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const owner = freshUserId()
        const group = { ...makeGroup(owner, true), avatar: "https://example.com/a.png" }
        yield* groups.create(group, [member(owner, "owner")])
        assert.deepStrictEqual(yield* groups.get(group.id), Option.some(group))
        const renamed = yield* groups.update(group.id, { name: "renamed", announcement: "read me" })
        assert.deepStrictEqual(renamed, Option.some({ ...group, name: "renamed", announcement: "read me" }))
        const cleared = yield* groups.update(group.id, { avatar: null, join_approval: false })
        const { avatar: _, ...withoutAvatar } = group
        const expected: Group = { ...withoutAvatar, name: "renamed", announcement: "read me", join_approval: false }
        assert.deepStrictEqual(cleared, Option.some(expected))
        assert.deepStrictEqual(yield* groups.update(group.id, {}), Option.some(expected))
        assert.deepStrictEqual(yield* groups.get(group.id), Option.some(expected))
        assert.deepStrictEqual((yield* groups.groupsOf(owner)).find((g) => g.id === group.id), expected)
        assert.deepStrictEqual(yield* groups.update(freshGroupId(), { name: "x" }), Option.none())
      }))

    it.effect("sets roles of members but never the owner's; transfers ownership in one step", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const [owner, a, b, outsider] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        const group = makeGroup(owner)
        yield* groups.create(group, [member(owner, "owner"), member(a), member(b)])
        assert.isTrue(yield* groups.setRole(group.id, a, "admin"))
        assert.isFalse(yield* groups.setRole(group.id, owner, "member"), "the owner's role changes only by transfer")
        assert.isFalse(yield* groups.setRole(group.id, outsider, "admin"))
        assert.deepStrictEqual(roles(yield* groups.members(group.id)), { [owner]: "owner", [a]: "admin", [b]: "member" })
        assert.isTrue(yield* groups.setRole(group.id, a, "member"))
        assert.deepStrictEqual(yield* groups.role(group.id, a), Option.some("member" as const))

        assert.isFalse(yield* groups.transfer(group.id, owner, outsider), "the new owner must be a member")
        assert.isFalse(yield* groups.transfer(group.id, a, b), "only the owner transfers")
        assert.isFalse(yield* groups.transfer(group.id, owner, owner))
        assert.deepStrictEqual((yield* groups.get(group.id)).pipe(Option.map((g) => g.owner_id)), Option.some(owner))
        assert.isTrue(yield* groups.transfer(group.id, owner, b))
        assert.deepStrictEqual(roles(yield* groups.members(group.id)), { [owner]: "admin", [a]: "member", [b]: "owner" })
        assert.deepStrictEqual((yield* groups.get(group.id)).pipe(Option.map((g) => g.owner_id)), Option.some(b))
        assert.isFalse(yield* groups.transfer(group.id, owner, a), "the old owner no longer owns it")
        assert.isFalse(yield* groups.setRole(group.id, b, "admin"))
      }))

    it.effect("dismisses a group with its members and requests, answering who the members were", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const [owner, a, asker] = [freshUserId(), freshUserId(), freshUserId()]
        const group = makeGroup(owner, true)
        const other = makeGroup(a)
        yield* groups.create(group, [member(owner, "owner"), member(a)])
        yield* groups.create(other, [member(a, "owner")])
        const request = joinRequest(group, asker)
        assert.isTrue(Option.isSome(yield* groups.requestJoin(request)))
        assert.deepStrictEqual([...(yield* groups.dismiss(group.id))].sort(), [owner, a].sort())
        assert.deepStrictEqual(yield* groups.get(group.id), Option.none())
        assert.deepStrictEqual(yield* groups.members(group.id), [])
        assert.deepStrictEqual(yield* groups.role(group.id, owner), Option.none())
        assert.deepStrictEqual(yield* groups.joinRequests(group.id), [])
        assert.deepStrictEqual(yield* groups.acceptJoinRequest(group.id, request.id, 2, 10), { _tag: "NotPending" })
        assert.deepStrictEqual((yield* groups.groupsOf(a)).map((g) => g.id), [other.id], "other groups stay")
        assert.deepStrictEqual(yield* groups.dismiss(group.id), [])
        assert.deepStrictEqual(yield* groups.requestJoin(joinRequest(group, asker)), Option.none())
      }))

    it.effect("admits members up to a cap, all or none", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const [owner, a, b, c] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        const group = makeGroup(owner)
        yield* groups.create(group, [member(owner, "owner"), member(a)])
        assert.deepStrictEqual(yield* groups.admit(group.id, [member(b, "member", 2), member(c, "member", 2)], 3), { _tag: "Full" })
        assert.deepStrictEqual(ids(yield* groups.members(group.id)), [owner, a].sort())
        // Members already in do not count twice.
        assert.deepStrictEqual(yield* groups.admit(group.id, [member(a, "member", 2), member(b, "member", 2)], 3), {
          _tag: "Added",
          added: [b]
        })
        assert.deepStrictEqual(yield* groups.admit(group.id, [member(b, "member", 3)], 3), { _tag: "Added", added: [] })
        assert.deepStrictEqual(yield* groups.admit(freshGroupId(), [member(c)], 3), { _tag: "NoGroup" })
      }))

    it.effect("concurrent admissions never pass the cap", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const owner = freshUserId()
        const group = makeGroup(owner)
        yield* groups.create(group, [member(owner, "owner")])
        const results = yield* Effect.forEach(
          Array.from({ length: 12 }, () => freshUserId()),
          (user) => groups.admit(group.id, [member(user, "member", 2)], 5),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(results.filter((r) => r._tag === "Added").length, 4)
        assert.strictEqual((yield* groups.members(group.id)).length, 5)
      }))

    it.effect("join requests: one pending per user, listed oldest first, accepted under the cap or rejected once", () =>
      Effect.gen(function*() {
        const groups = yield* GroupStore
        const [owner, a, b, c, d] = [freshUserId(), freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        const group = makeGroup(owner, true)
        yield* groups.create(group, [member(owner, "owner")])
        const first = joinRequest(group, a, 10, "let me in 🙏")
        assert.deepStrictEqual(yield* groups.requestJoin(first), Option.some({ request: first, created: true }))
        // Asking again answers the pending request.
        assert.deepStrictEqual(yield* groups.requestJoin(joinRequest(group, a, 11)), Option.some({ request: first, created: false }))
        const second = joinRequest(group, b, 12)
        const third = joinRequest(group, c, 13)
        yield* groups.requestJoin(second)
        yield* groups.requestJoin(third)
        yield* groups.requestJoin(joinRequest(group, d, 14))
        assert.deepStrictEqual((yield* groups.joinRequests(group.id)).map((r) => r.user_id), [a, b, c, d])

        const accepted = yield* groups.acceptJoinRequest(group.id, first.id, 20, 3)
        assert.deepStrictEqual(accepted, { _tag: "Accepted", request: { ...first, status: "accepted" }, added: true })
        assert.deepStrictEqual(yield* groups.role(group.id, a), Option.some("member" as const))
        assert.deepStrictEqual(yield* groups.acceptJoinRequest(group.id, first.id, 21, 3), { _tag: "NotPending" })
        assert.deepStrictEqual(yield* groups.acceptJoinRequest(freshGroupId(), second.id, 21, 3), { _tag: "NotPending" })

        const rejected = yield* groups.rejectJoinRequest(group.id, second.id)
        assert.deepStrictEqual(rejected, Option.some({ ...second, status: "rejected" as const }))
        assert.deepStrictEqual(yield* groups.rejectJoinRequest(group.id, second.id), Option.none())
        assert.deepStrictEqual(yield* groups.acceptJoinRequest(group.id, second.id, 22, 3), { _tag: "NotPending" })
        // A rejected user may ask again.
        const again = joinRequest(group, b, 23)
        assert.deepStrictEqual(yield* groups.requestJoin(again), Option.some({ request: again, created: true }))

        // A user invited meanwhile is not listed; accepting their request adds nobody.
        yield* groups.addMembers(group.id, [member(d, "member", 24)])
        assert.deepStrictEqual((yield* groups.joinRequests(group.id)).map((r) => r.user_id), [c, b])
        assert.deepStrictEqual(yield* groups.acceptJoinRequest(group.id, third.id, 25, 3), { _tag: "Full" })
        assert.deepStrictEqual(yield* groups.role(group.id, c), Option.none())
        const dRequest = (yield* groups.requestJoin(joinRequest(group, d, 26))).pipe(Option.getOrThrow)
        assert.isFalse(dRequest.created)
        const acceptedD = yield* groups.acceptJoinRequest(group.id, dRequest.request.id, 27, 3)
        assert.deepStrictEqual(acceptedD, { _tag: "Accepted", request: { ...dRequest.request, status: "accepted" }, added: false })
        assert.strictEqual((yield* groups.members(group.id)).length, 3)
      }))
  })
