import { type Group, type GroupMember, JoinRequestId } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option } from "effect"
import fc from "fast-check"
import * as CachedGroupStore from "../src/CachedGroupStore.ts"
import { GroupMemberCache } from "../src/GroupMemberCache.ts"
import { GroupStore } from "../src/GroupStore.ts"
import { freshGroupId, freshUserId, unique } from "./Fixtures.ts"
import { groupStoreSuite } from "./GroupStoreSuite.ts"
import { instrumentLoads } from "./InstrumentedLoads.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

export interface GroupMemberCacheSuiteOptions extends SuiteOptions {
  /** The TTL the adapter was built with: the suite waits it out once. */
  readonly ttlMillis: number
  /** Runs of the random-operations property. */
  readonly runs?: number
  /**
   * Extra store loads a read may cause beyond the first (0 for a cache no one else touches): a
   * shared server may lose its data to another test while this one runs.
   */
  readonly spareLoads?: number
}

const member = (user_id: UserId, role: GroupMember["role"] = "member", joined_at = 1): GroupMember => ({ user_id, role, joined_at })

const makeGroup = (owner: UserId, id: GroupId = freshGroupId()): Group => ({
  id,
  name: "cached",
  owner_id: owner,
  created_at: 1,
  join_approval: false
})

/**
 * The inner store as the tests see it: loads of `members` are counted, may be held (a reader
 * caught between loading and caching), and may yield a few times first (so that concurrent
 * readers and writers interleave differently).
 */
const instrument = (inner: GroupStore["Service"]) => {
  const { late, load, state } = instrumentLoads()
  const store = GroupStore.of({
    ...inner,
    create: late(inner.create),
    addMembers: late(inner.addMembers),
    admit: late(inner.admit),
    removeMember: late(inner.removeMember),
    setRole: late(inner.setRole),
    transfer: late(inner.transfer),
    dismiss: late(inner.dismiss),
    acceptJoinRequest: late(inner.acceptJoinRequest),
    members: (id) => load(inner.members(id))
  })
  return { store, state }
}

/** A fresh memory store, instrumented, and two cached views of it sharing the suite's cache: two processes. */
const setup = Effect.gen(function*() {
  const cache = yield* GroupMemberCache
  const inner = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
  const { state, store } = instrument(inner)
  return {
    inner,
    state,
    cache,
    writer: CachedGroupStore.make(store, cache),
    reader: CachedGroupStore.make(store, cache)
  }
})

const sameRoles = Effect.fnUntraced(function*(
  reader: GroupStore["Service"],
  inner: GroupStore["Service"],
  group: GroupId,
  users: ReadonlyArray<UserId>
) {
  for (const user of users) {
    assert.deepStrictEqual(yield* reader.role(group, user), yield* inner.role(group, user), `role of ${user} in ${group}`)
  }
})

/**
 * The GroupMemberCache contract, and the cached GroupStore on it: the GroupStore suite through
 * the cache, reads served without the store, the read/write race, a cold start, and random
 * operations of one process interleaved with reads of another always agreeing with the store.
 */
export const groupMemberCacheSuite = (
  name: string,
  adapter: Layer.Layer<GroupMemberCache, unknown>,
  options: GroupMemberCacheSuiteOptions
) => {
  groupStoreSuite(`${name}, cached`, CachedGroupStore.layer.pipe(Layer.provide([adapter, GroupStore.layerMemory])), options)

  describeAdapter(`GroupMemberCache conformance: ${name}`, adapter, options, (it) => {
    const spare = options.spareLoads ?? 0

    it.effect("a miss answers a version; a fill with it is then a hit, in the order given", () =>
      Effect.gen(function*() {
        const cache = yield* GroupMemberCache
        const group = freshGroupId()
        const [a, b, c] = [freshUserId(), freshUserId(), freshUserId()]
        const miss = yield* cache.members(group)
        assert.strictEqual(miss._tag, "Miss")
        if (miss._tag !== "Miss") return
        // Same joined_at, not in id order: the cache keeps the store's order as it was.
        const members = [member(c, "owner", 5), member(a, "admin", 5), member(b, "member", 2)]
        assert.isTrue(yield* cache.fill(group, miss.version, members))
        assert.deepStrictEqual(yield* cache.members(group), { _tag: "Hit", value: members })
        assert.deepStrictEqual(yield* cache.role(group, a), { _tag: "Hit", value: Option.some("admin" as const) })
        assert.deepStrictEqual(yield* cache.role(group, freshUserId()), { _tag: "Hit", value: Option.none() })
      }))

    it.effect("a group without members is cached as such", () =>
      Effect.gen(function*() {
        const cache = yield* GroupMemberCache
        const group = freshGroupId()
        const miss = yield* cache.role(group, freshUserId())
        assert.strictEqual(miss._tag, "Miss")
        if (miss._tag !== "Miss") return
        assert.isTrue(yield* cache.fill(group, miss.version, []))
        assert.deepStrictEqual(yield* cache.members(group), { _tag: "Hit", value: [] })
        assert.deepStrictEqual(yield* cache.role(group, freshUserId()), { _tag: "Hit", value: Option.none() })
      }))

    it.effect("a fill with a version an invalidation replaced stores nothing; invalidation drops the entry", () =>
      Effect.gen(function*() {
        const cache = yield* GroupMemberCache
        const [group, other] = [freshGroupId(), freshGroupId()]
        const user = freshUserId()
        const first = yield* cache.members(group)
        const otherMiss = yield* cache.members(other)
        if (first._tag !== "Miss" || otherMiss._tag !== "Miss") return assert.fail("expected misses")
        yield* cache.invalidate([group])
        assert.isFalse(yield* cache.fill(group, first.version, [member(user)]))
        const second = yield* cache.members(group)
        if (second._tag !== "Miss") return assert.fail("expected a miss")
        assert.notStrictEqual(second.version, first.version)
        assert.isTrue(yield* cache.fill(group, second.version, [member(user)]))
        assert.isTrue(yield* cache.fill(other, otherMiss.version, []), "another group's version is its own")
        yield* cache.invalidate([group])
        assert.strictEqual((yield* cache.members(group))._tag, "Miss")
        assert.strictEqual((yield* cache.role(group, user))._tag, "Miss")
        assert.deepStrictEqual(yield* cache.members(other), { _tag: "Hit", value: [] })
      }))

    it.effect("entries expire after the TTL", () =>
      Effect.gen(function*() {
        const cache = yield* GroupMemberCache
        const group = freshGroupId()
        const miss = yield* cache.members(group)
        if (miss._tag !== "Miss") return assert.fail("expected a miss")
        assert.isTrue(yield* cache.fill(group, miss.version, [member(freshUserId())]))
        yield* Effect.sleep(options.ttlMillis + 300)
        assert.strictEqual((yield* cache.members(group))._tag, "Miss")
      }))

    it.effect("reads of a cached group do not go to the store", () =>
      Effect.gen(function*() {
        const { reader, state, writer } = yield* setup
        const [owner, a] = [freshUserId(), freshUserId()]
        const group = makeGroup(owner)
        yield* writer.create(group, [member(owner, "owner"), member(a)])
        for (let i = 0; i < 20; i++) {
          assert.deepStrictEqual(yield* reader.role(group.id, a), Option.some("member" as const))
          assert.strictEqual((yield* reader.members(group.id)).length, 2)
        }
        assert.isAtMost(state.loads, 1 + spare)
        assert.isAtLeast(state.loads, 1)
      }))

    it.effect("a reader that loaded before a write does not cache what it loaded", () =>
      Effect.gen(function*() {
        const { inner, reader, state, writer } = yield* setup
        const [owner, a] = [freshUserId(), freshUserId()]
        const group = makeGroup(owner)
        yield* writer.create(group, [member(owner, "owner"), member(a)])
        const hold = { loaded: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
        state.hold = hold
        // The reader misses, loads {owner, a}, and is held before caching it.
        const read = yield* Effect.forkChild(reader.role(group.id, a))
        yield* Deferred.await(hold.loaded)
        // Meanwhile a write commits and invalidates.
        assert.isTrue(yield* writer.removeMember(group.id, a))
        yield* Deferred.succeed(hold.release, undefined)
        assert.deepStrictEqual(yield* Fiber.join(read), Option.some("member" as const), "it read before the write")
        // Its load must not have been cached: the removal shows.
        assert.deepStrictEqual(yield* reader.role(group.id, a), Option.none())
        assert.deepStrictEqual(yield* reader.members(group.id), yield* inner.members(group.id))
      }))

    it.effect("starting cold, reads agree with what the store already holds", () =>
      Effect.gen(function*() {
        const { inner, reader } = yield* setup
        const [owner, a, b] = [freshUserId(), freshUserId(), freshUserId()]
        const group = makeGroup(owner)
        // Written before this cache existed: nothing was invalidated.
        yield* inner.create(group, [member(owner, "owner"), member(a, "admin")])
        yield* inner.addMembers(group.id, [member(b, "member", 2)])
        assert.deepStrictEqual(yield* reader.members(group.id), yield* inner.members(group.id))
        yield* sameRoles(reader, inner, group.id, [owner, a, b, freshUserId()])
        assert.deepStrictEqual(yield* reader.members(freshGroupId()), [])
      }))

    it.effect("property: one process's random writes, racing another's reads, leave every read agreeing with the store", () =>
      Effect.gen(function*() {
        const { cache } = yield* setup
        const groupCount = 3
        const userCount = 6
        const op = fc.oneof(
          fc.record({ kind: fc.constant("create" as const), group: fc.nat(groupCount - 1), owner: fc.nat(userCount - 1) }),
          fc.record({ kind: fc.constant("add" as const), group: fc.nat(groupCount - 1), users: fc.uniqueArray(fc.nat(userCount - 1), { maxLength: 3 }) }),
          fc.record({ kind: fc.constant("admit" as const), group: fc.nat(groupCount - 1), users: fc.uniqueArray(fc.nat(userCount - 1), { maxLength: 3 }) }),
          fc.record({ kind: fc.constant("remove" as const), group: fc.nat(groupCount - 1), user: fc.nat(userCount - 1) }),
          fc.record({ kind: fc.constant("role" as const), group: fc.nat(groupCount - 1), user: fc.nat(userCount - 1), admin: fc.boolean() }),
          fc.record({ kind: fc.constant("transfer" as const), group: fc.nat(groupCount - 1), user: fc.nat(userCount - 1) }),
          fc.record({ kind: fc.constant("dismiss" as const), group: fc.nat(groupCount - 1) }),
          fc.record({ kind: fc.constant("accept" as const), group: fc.nat(groupCount - 1), user: fc.nat(userCount - 1) })
        )
        const scenario = fc.record({
          // `check`: compare every read with the store after this step (which also warms the
          // cache); without it, the next step's racing reads find the group cold and load it.
          ops: fc.array(fc.record({ op, read: fc.nat(groupCount - 1), reader: fc.nat(userCount - 1), check: fc.boolean() }), {
            minLength: 1,
            maxLength: 25
          }),
          jitter: fc.array(fc.nat(4), { maxLength: 8 }),
          // Reads before the first write: some runs start with the cache warm.
          warm: fc.boolean()
        })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(scenario, ({ jitter, ops, warm }) =>
              Effect.runPromise(Effect.gen(function*() {
                const inner = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
                const { state, store } = instrument(inner)
                state.jitter = jitter
                const writer = CachedGroupStore.make(store, cache)
                const reader = CachedGroupStore.make(store, cache)
                const groups = Array.from({ length: groupCount }, () => freshGroupId())
                const users = Array.from({ length: userCount }, () => freshUserId())
                const agree = Effect.fnUntraced(function*(when: string) {
                  for (const group of groups) {
                    assert.deepStrictEqual(yield* reader.members(group), yield* inner.members(group), `members ${when}`)
                    yield* sameRoles(reader, inner, group, users)
                  }
                })
                if (warm) yield* agree("before any write")
                let joinedAt = 2
                for (const [step, { check, op, read, reader: readerUser }] of ops.entries()) {
                  const group = groups[op.group]!
                  // Reads of the other process, racing the write: of the group written and of another.
                  const racing = yield* Effect.forkChild(
                    Effect.all([reader.members(group), reader.role(groups[read]!, users[readerUser]!)], { concurrency: "unbounded" })
                  )
                  joinedAt++
                  switch (op.kind) {
                    case "create":
                      yield* writer.create(makeGroup(users[op.owner]!, group), [member(users[op.owner]!, "owner", joinedAt)])
                      break
                    case "add":
                      yield* writer.addMembers(group, op.users.map((u) => member(users[u]!, "member", joinedAt)))
                      break
                    case "admit":
                      yield* writer.admit(group, op.users.map((u) => member(users[u]!, "member", joinedAt)), 4)
                      break
                    case "remove":
                      yield* writer.removeMember(group, users[op.user]!)
                      break
                    case "role":
                      yield* writer.setRole(group, users[op.user]!, op.admin ? "admin" : "member")
                      break
                    case "transfer": {
                      const owner = Option.map(yield* inner.get(group), (g) => g.owner_id)
                      if (Option.isSome(owner)) yield* writer.transfer(group, owner.value, users[op.user]!)
                      break
                    }
                    case "dismiss":
                      yield* writer.dismiss(group)
                      break
                    case "accept": {
                      const asked = yield* writer.requestJoin({
                        id: JoinRequestId.make(unique("jr")),
                        group_id: group,
                        user_id: users[op.user]!,
                        status: "pending",
                        created_at: joinedAt
                      })
                      if (Option.isSome(asked)) yield* writer.acceptJoinRequest(group, asked.value.request.id, joinedAt, 4)
                      break
                    }
                  }
                  yield* Fiber.join(racing)
                  if (check) yield* agree(`after step ${step} (${op.kind})`)
                }
                yield* agree("at the end")
              }))
            ),
            { numRuns: options.runs ?? 60 }
          )
        )
      }), { timeout: 120_000 })
  })
}
