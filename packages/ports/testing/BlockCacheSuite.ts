import { FriendRequestId } from "@im/domain/Friend"
import type { UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer } from "effect"
import fc from "fast-check"
import { BlockCache } from "../src/BlockCache.ts"
import * as CachedFriendStore from "../src/CachedFriendStore.ts"
import { type BlockPair, FriendStore } from "../src/FriendStore.ts"
import { PortError } from "../src/PortError.ts"
import { freshUserId, unique } from "./Fixtures.ts"
import { friendStoreSuite } from "./FriendStoreSuite.ts"
import { instrumentLoads } from "./InstrumentedLoads.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

export interface BlockCacheSuiteOptions extends SuiteOptions {
  /** The TTL the adapter was built with: the suite waits it out once. */
  readonly ttlMillis: number
  /** Runs of the random-operations property. */
  readonly runs?: number
  /**
   * Extra store loads a check may cause beyond the first (0 for a cache no one else touches): a
   * shared server may lose its data to another test while this one runs.
   */
  readonly spareLoads?: number
}

/**
 * The inner store as the tests see it: `blockedBy` loads are counted (and the blockers each
 * asked for), may be held (a check caught between loading and caching), and calls may yield a
 * few times first (so that concurrent checks and writes interleave differently).
 */
const instrument = (inner: FriendStore["Service"]) => {
  const { late, load, state: loads } = instrumentLoads()
  const state = Object.assign(loads, { loaded: [] as Array<ReadonlyArray<UserId>> })
  const store = FriendStore.of({
    ...inner,
    request: late(inner.request),
    accept: late(inner.accept),
    reject: late(inner.reject),
    unfriend: late(inner.unfriend),
    block: late(inner.block),
    unblock: late(inner.unblock),
    blockedBy: (blockers) => Effect.suspend(() => {
      state.loaded.push(blockers)
      return load(inner.blockedBy(blockers))
    })
  })
  return { store, state }
}

/** A fresh memory store, instrumented, and two cached views of it sharing the suite's cache: two processes. */
const setup = Effect.gen(function*() {
  const cache = yield* BlockCache
  const inner = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
  const { state, store } = instrument(inner)
  return {
    inner,
    state,
    cache,
    writer: CachedFriendStore.make(store, cache),
    reader: CachedFriendStore.make(store, cache)
  }
})

const blocks = (store: FriendStore["Service"], blocker: UserId, blocked: UserId) =>
  Effect.map(store.blocking([{ blocker, blocked }]), (found) => found.length === 1)

/** Every ordered pair of `users`, the user with itself included. */
const allPairs = (users: ReadonlyArray<UserId>): Array<BlockPair> =>
  users.flatMap((blocker) => users.map((blocked) => ({ blocker, blocked })))

/**
 * The BlockCache contract, and the cached FriendStore on it: the FriendStore suite through the
 * cache, checks served without the store, misses loaded together, blocks and unblocks seen by
 * the next check, a failed or interrupted write still invalidating, the check/write race, and
 * random writes of one process interleaved with checks of another always agreeing with the store.
 */
export const blockCacheSuite = (name: string, adapter: Layer.Layer<BlockCache, unknown>, options: BlockCacheSuiteOptions) => {
  friendStoreSuite(`${name}, cached`, CachedFriendStore.layer.pipe(Layer.provide([adapter, FriendStore.layerMemory])), options)

  describeAdapter(`BlockCache conformance: ${name}`, adapter, options, (it) => {
    const spare = options.spareLoads ?? 0

    it.effect("a miss answers the blocker's version; a fill with it is then a hit for every pair of that blocker", () =>
      Effect.gen(function*() {
        const cache = yield* BlockCache
        const [alice, bob, carol, dave] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        const pairs = [{ blocker: alice, blocked: bob }, { blocker: dave, blocked: alice }, { blocker: alice, blocked: carol }]
        const [first, other, second] = yield* cache.lookup(pairs)
        if (first?._tag !== "Miss" || other?._tag !== "Miss" || second?._tag !== "Miss") return assert.fail("expected misses")
        assert.strictEqual(second.version, first.version, "one blocker, one version")
        assert.notStrictEqual(other.version, first.version)
        assert.isTrue(yield* cache.fill(alice, first.version, [bob, dave]))
        const [hitBob, missDave, hitCarol] = yield* cache.lookup(pairs)
        assert.deepStrictEqual([hitBob, hitCarol], [{ _tag: "Hit", value: true }, { _tag: "Hit", value: false }])
        assert.deepStrictEqual(missDave, { _tag: "Miss", version: other.version })
        assert.deepStrictEqual(yield* cache.lookup([{ blocker: alice, blocked: dave }, { blocker: alice, blocked: alice }]), [
          { _tag: "Hit", value: true },
          { _tag: "Hit", value: false }
        ])
        assert.deepStrictEqual(yield* cache.lookup([]), [])
      }))

    it.effect("a user who blocked nobody is cached as such", () =>
      Effect.gen(function*() {
        const cache = yield* BlockCache
        const [alice, bob] = [freshUserId(), freshUserId()]
        const [miss] = yield* cache.lookup([{ blocker: alice, blocked: bob }])
        if (miss?._tag !== "Miss") return assert.fail("expected a miss")
        assert.isTrue(yield* cache.fill(alice, miss.version, []))
        assert.deepStrictEqual(yield* cache.lookup([{ blocker: alice, blocked: bob }]), [{ _tag: "Hit", value: false }])
      }))

    it.effect("a fill with a version an invalidation replaced stores nothing; invalidation drops the entry", () =>
      Effect.gen(function*() {
        const cache = yield* BlockCache
        const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
        const [first, other] = yield* cache.lookup([{ blocker: alice, blocked: bob }, { blocker: carol, blocked: bob }])
        if (first?._tag !== "Miss" || other?._tag !== "Miss") return assert.fail("expected misses")
        yield* cache.invalidate([alice])
        assert.isFalse(yield* cache.fill(alice, first.version, [bob]))
        const [second] = yield* cache.lookup([{ blocker: alice, blocked: bob }])
        if (second?._tag !== "Miss") return assert.fail("expected a miss")
        assert.notStrictEqual(second.version, first.version)
        assert.isTrue(yield* cache.fill(alice, second.version, [bob]))
        assert.isTrue(yield* cache.fill(carol, other.version, [bob]), "another user's version is their own")
        yield* cache.invalidate([alice, freshUserId()])
        assert.strictEqual((yield* cache.lookup([{ blocker: alice, blocked: bob }]))[0]?._tag, "Miss")
        assert.deepStrictEqual(yield* cache.lookup([{ blocker: carol, blocked: bob }]), [{ _tag: "Hit", value: true }])
      }))

    it.effect("entries expire after the TTL", () =>
      Effect.gen(function*() {
        const cache = yield* BlockCache
        const [alice, bob] = [freshUserId(), freshUserId()]
        const [miss] = yield* cache.lookup([{ blocker: alice, blocked: bob }])
        if (miss?._tag !== "Miss") return assert.fail("expected a miss")
        assert.isTrue(yield* cache.fill(alice, miss.version, [bob]))
        yield* Effect.sleep(options.ttlMillis + 300)
        assert.strictEqual((yield* cache.lookup([{ blocker: alice, blocked: bob }]))[0]?._tag, "Miss")
      }))

    it.effect("checks of a cached blocker do not go to the store", () =>
      Effect.gen(function*() {
        const { reader, state, writer } = yield* setup
        const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
        yield* writer.block(alice, bob, 1)
        for (let i = 0; i < 20; i++) {
          assert.isTrue(yield* blocks(reader, alice, bob))
          assert.isFalse(yield* blocks(reader, alice, carol))
        }
        assert.isAtMost(state.loads, 1 + spare)
        assert.isAtLeast(state.loads, 1)
      }))

    it.effect("the blockers that missed together are loaded in one store call", () =>
      Effect.gen(function*() {
        const { inner, reader, state } = yield* setup
        const [alice, bob, carol, dave] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        yield* inner.block(alice, bob, 1)
        yield* inner.block(carol, alice, 1)
        const pairs = [
          { blocker: alice, blocked: bob },
          { blocker: bob, blocked: alice },
          { blocker: carol, blocked: alice },
          { blocker: alice, blocked: carol },
          { blocker: dave, blocked: carol }
        ]
        assert.deepStrictEqual(yield* reader.blocking(pairs), [pairs[0], pairs[2]])
        assert.strictEqual(state.loads, 1)
        assert.deepStrictEqual([...state.loaded[0]!].sort(), [alice, bob, carol, dave].sort())
        assert.deepStrictEqual(yield* reader.blocking(pairs), [pairs[0], pairs[2]])
        assert.isAtMost(state.loads, 1 + spare)
      }))

    it.effect("a block is seen by the next check of another process, and an unblock too", () =>
      Effect.gen(function*() {
        const { reader, writer } = yield* setup
        const [alice, bob] = [freshUserId(), freshUserId()]
        // Cached as not blocked, both ways.
        assert.isFalse(yield* blocks(reader, alice, bob))
        assert.isFalse(yield* blocks(reader, bob, alice))
        yield* writer.block(alice, bob, 1)
        assert.isTrue(yield* blocks(reader, alice, bob))
        assert.isFalse(yield* blocks(reader, bob, alice))
        yield* writer.block(bob, alice, 2)
        assert.isTrue(yield* blocks(reader, bob, alice))
        yield* writer.unblock(alice, bob, 3)
        assert.isFalse(yield* blocks(reader, alice, bob))
        assert.isTrue(yield* blocks(reader, bob, alice))
      }))

    it.effect("a block that committed and then failed, or was interrupted, still invalidates", () =>
      Effect.gen(function*() {
        const { cache, inner, reader } = yield* setup
        const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
        const committed = yield* Deferred.make<void>()
        const failing = CachedFriendStore.make(
          FriendStore.of({
            ...inner,
            // The store commits the block, then its answer is lost.
            block: (user, target, now) =>
              Effect.andThen(inner.block(user, target, now), Effect.fail(new PortError({ port: "FriendStore", operation: "block", retryable: true }))),
            // The store commits the unblock, then the caller gives up waiting.
            unblock: (user, target, now) => Effect.andThen(inner.unblock(user, target, now), Effect.andThen(Deferred.succeed(committed, undefined), Effect.never))
          }),
          cache
        )
        assert.isFalse(yield* blocks(reader, alice, bob))
        assert.isFalse(yield* blocks(reader, alice, carol))
        const error = yield* Effect.flip(failing.block(alice, bob, 1))
        assert.strictEqual(error.operation, "block")
        assert.isTrue(yield* blocks(reader, alice, bob))

        yield* inner.block(alice, carol, 2)
        yield* cache.invalidate([alice])
        assert.isTrue(yield* blocks(reader, alice, carol))
        const unblocking = yield* Effect.forkChild(failing.unblock(alice, carol, 3))
        yield* Deferred.await(committed)
        yield* Fiber.interrupt(unblocking)
        assert.isFalse(yield* blocks(reader, alice, carol))
      }))

    it.effect("a check that loaded before a block does not cache what it loaded", () =>
      Effect.gen(function*() {
        const { inner, reader, state, writer } = yield* setup
        const [alice, bob] = [freshUserId(), freshUserId()]
        const hold = { loaded: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
        state.hold = hold
        // The check misses, loads "alice blocked nobody", and is held before caching it.
        const check = yield* Effect.forkChild(blocks(reader, alice, bob))
        yield* Deferred.await(hold.loaded)
        // Meanwhile a block commits and invalidates.
        yield* writer.block(alice, bob, 1)
        yield* Deferred.succeed(hold.release, undefined)
        assert.isFalse(yield* Fiber.join(check), "it loaded before the block")
        // Its load must not have been cached: the block shows.
        assert.isTrue(yield* blocks(reader, alice, bob))
        assert.deepStrictEqual(yield* reader.blocking(allPairs([alice, bob])), yield* inner.blocking(allPairs([alice, bob])))
      }))

    it.effect("starting cold, checks agree with what the store already holds", () =>
      Effect.gen(function*() {
        const { inner, reader } = yield* setup
        const users = [freshUserId(), freshUserId(), freshUserId()]
        // Written before this cache existed: nothing was invalidated.
        yield* inner.block(users[0]!, users[1]!, 1)
        yield* inner.block(users[2]!, users[0]!, 2)
        assert.deepStrictEqual(yield* reader.blocking(allPairs(users)), yield* inner.blocking(allPairs(users)))
        assert.strictEqual((yield* reader.blocking(allPairs(users))).length, 2)
      }))

    it.effect("property: one process's random friend writes, racing another's checks, leave every check agreeing with the store", () =>
      Effect.gen(function*() {
        const { cache } = yield* setup
        const userCount = 4
        const user = fc.nat(userCount - 1)
        const op = fc.oneof(
          fc.record({ kind: fc.constant("block" as const), user, target: user }),
          fc.record({ kind: fc.constant("unblock" as const), user, target: user }),
          fc.record({ kind: fc.constant("befriend" as const), user, target: user }),
          fc.record({ kind: fc.constant("request" as const), user, target: user }),
          fc.record({ kind: fc.constant("reject" as const), user, target: user }),
          fc.record({ kind: fc.constant("unfriend" as const), user, target: user })
        )
        const scenario = fc.record({
          ops: fc.array(fc.record({ op, check: fc.boolean() }), { minLength: 1, maxLength: 25 }),
          jitter: fc.array(fc.nat(4), { maxLength: 8 }),
          warm: fc.boolean()
        })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(scenario, ({ jitter, ops, warm }) =>
              Effect.runPromise(Effect.gen(function*() {
                const inner = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
                const { state, store } = instrument(inner)
                state.jitter = jitter
                const writer = CachedFriendStore.make(store, cache)
                const reader = CachedFriendStore.make(store, cache)
                const users = Array.from({ length: userCount }, () => freshUserId())
                const pairs = allPairs(users)
                const agree = Effect.fnUntraced(function*(when: string) {
                  assert.deepStrictEqual(yield* reader.blocking(pairs), yield* inner.blocking(pairs), `blocks ${when}`)
                })
                if (warm) yield* agree("before any write")
                for (const [step, { check, op }] of ops.entries()) {
                  const [a, b] = [users[op.user]!, users[op.target]!]
                  // Checks of the other process, racing the write: single pairs and all at once.
                  const racing = yield* Effect.forkChild(
                    Effect.all([reader.blocking([{ blocker: a, blocked: b }, { blocker: b, blocked: a }]), reader.blocking(pairs)], {
                      concurrency: "unbounded"
                    })
                  )
                  const now = step + 1
                  const request = (from: UserId, to: UserId) =>
                    writer.request({ id: FriendRequestId.make(unique("fr")), from_id: from, to_id: to, message: "", created_at: now })
                  switch (op.kind) {
                    case "block":
                      yield* writer.block(a, b, now)
                      break
                    case "unblock":
                      yield* writer.unblock(a, b, now)
                      break
                    case "request":
                      yield* request(a, b)
                      break
                    case "befriend": {
                      const asked = yield* request(a, b)
                      if (asked._tag === "Sent" || asked._tag === "IncomingPending") {
                        const answerer = asked.request.to_id
                        yield* writer.accept(asked.request.id, answerer, now)
                      }
                      break
                    }
                    case "reject": {
                      const incoming = (yield* writer.requests(a)).incoming
                      if (incoming[0] !== undefined) yield* writer.reject(incoming[0].id, a, now)
                      break
                    }
                    case "unfriend":
                      yield* writer.unfriend(a, b, now)
                      break
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
