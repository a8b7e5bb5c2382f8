import type { UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, type Layer, Schema } from "effect"
import { SeqStore } from "../src/SeqStore.ts"
import { freshUserId } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const Count = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 20 }))

/**
 * The SeqStore contract: per-user numbers from 1, handed out in consecutive blocks, never twice.
 * `racingStartsMaySkip`: an adapter with a durable floor (Redis) may skip numbers when concurrent
 * calls start a user whose counter is missing (each reserves a block; the later one wins); the
 * concurrency test then checks "never twice" and a bounded skip instead of "no hole".
 */
export const seqStoreSuite = (
  name: string,
  adapter: Layer.Layer<SeqStore, unknown>,
  options: SuiteOptions & { readonly racingStartsMaySkip?: number } = {}
) =>
  describeAdapter(`SeqStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("a user's numbers start at 1; current() is the highest handed out", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const user = freshUserId()
        assert.strictEqual(yield* store.current(user), 0)
        assert.strictEqual((yield* store.allocate([[user, 1]])).get(user), 1)
        assert.strictEqual(yield* store.current(user), 1)
        assert.strictEqual((yield* store.allocate([[user, 3]])).get(user), 2)
        assert.strictEqual(yield* store.current(user), 4)
        assert.strictEqual((yield* store.allocate([[user, 1]])).get(user), 5)
        assert.strictEqual(yield* store.current(user), 5)
      }))

    it.effect.prop(
      "successive blocks are consecutive and disjoint",
      { counts: Schema.Array(Count).check(Schema.isBetweenLength(1, 8)) },
      ({ counts }) =>
        Effect.gen(function*() {
          const store = yield* SeqStore
          const user = freshUserId()
          let expected = 1
          for (const count of counts) {
            assert.strictEqual((yield* store.allocate([[user, count]])).get(user), expected)
            expected += count
          }
          assert.strictEqual(yield* store.current(user), expected - 1)
        }),
      { timeout: 60_000, arbitrary: { runs: 25 } }
    )

    it.effect("allocates for many users in one call, each from its own sequence", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const [a, b, c, untouched] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        yield* store.allocate([[a, 4]])
        yield* store.allocate([[b, 1]])
        const firsts = yield* store.allocate([[a, 2], [b, 3], [c, 5]])
        assert.strictEqual(firsts.size, 3)
        assert.strictEqual(firsts.get(a), 5)
        assert.strictEqual(firsts.get(b), 2)
        assert.strictEqual(firsts.get(c), 1)
        assert.strictEqual(yield* store.current(a), 6)
        assert.strictEqual(yield* store.current(b), 4)
        assert.strictEqual(yield* store.current(c), 5)
        assert.strictEqual(yield* store.current(untouched), 0)
        assert.isFalse(firsts.has(untouched))
      }))

    it.effect("a user listed twice in one call gets both blocks, as one run from the returned number", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const user = freshUserId()
        yield* store.allocate([[user, 1]])
        const firsts = yield* store.allocate([[user, 2], [user, 3]])
        assert.strictEqual(firsts.get(user), 2)
        assert.strictEqual(yield* store.current(user), 6)
      }))

    it.effect("a large call: 500 users at once", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const users = Array.from({ length: 500 }, freshUserId)
        const firsts = yield* store.allocate(users.map((user, i) => [user, 1 + (i % 3)] as const))
        assert.strictEqual(firsts.size, users.length)
        for (const [i, user] of users.entries()) {
          assert.strictEqual(firsts.get(user), 1)
          assert.strictEqual(yield* store.current(user), 1 + (i % 3))
        }
      }))

    it.effect("concurrent calls never hand out a number twice", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const shared = freshUserId()
        const other = freshUserId()
        const calls: Array<ReadonlyArray<readonly [UserId, number]>> = Array.from(
          { length: 40 },
          (_, i) => i % 2 === 0 ? [[shared, 1 + (i % 5)]] : [[other, 2], [shared, 1 + (i % 5)]]
        )
        const results = yield* Effect.forEach(calls, (requests) => store.allocate(requests), { concurrency: "unbounded" })
        const handedOut = new Map<UserId, Array<number>>([[shared, []], [other, []]])
        calls.forEach((requests, i) => {
          for (const [user, count] of requests) {
            const first = results[i]!.get(user)!
            for (let n = first; n < first + count; n++) handedOut.get(user)!.push(n)
          }
        })
        for (const [user, numbers] of handedOut) {
          const sorted = [...numbers].sort((x, y) => x - y)
          const skip = options.racingStartsMaySkip
          if (skip === undefined) {
            // Every number 1..total exactly once: no duplicate, no hole.
            assert.deepStrictEqual(sorted, Array.from({ length: sorted.length }, (_, k) => k + 1))
            assert.strictEqual(yield* store.current(user), sorted.length)
          } else {
            // Never twice; the only holes are the blocks racing first calls reserved.
            assert.strictEqual(new Set(sorted).size, sorted.length, "a number was handed out twice")
            assert.isAtMost(sorted.at(-1)! - sorted.length, skip, "more numbers skipped than racing starts explain")
            assert.strictEqual(yield* store.current(user), sorted.at(-1))
          }
        }
      }))

    it.effect("giveBack sets a counter back only where nothing was taken since", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const [a, b] = [freshUserId(), freshUserId()]
        yield* store.allocate([[a, 10], [b, 10]])
        yield* store.allocate([[b, 1]])
        yield* store.giveBack([{ user: a, handedUpTo: 3, reservedUpTo: 10 }, { user: b, handedUpTo: 3, reservedUpTo: 10 }])
        assert.strictEqual(yield* store.current(a), 3)
        assert.strictEqual((yield* store.allocate([[a, 1]])).get(a), 4)
        // b's counter moved past 10: its numbers stay taken.
        assert.strictEqual(yield* store.current(b), 11)
      }))

    it.effect("users are independent", () =>
      Effect.gen(function*() {
        const store = yield* SeqStore
        const [a, b] = [freshUserId(), freshUserId()]
        yield* store.allocate([[a, 7]])
        assert.strictEqual(yield* store.current(b), 0)
        assert.strictEqual((yield* store.allocate([[b, 1]])).get(b), 1)
        assert.strictEqual(yield* store.current(a), 7)
      }))
  })
