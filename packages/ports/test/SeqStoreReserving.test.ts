import { UserId } from "@im/domain/Ids"
import { Effect, Layer, Scope } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { layerReserving, reserving, SeqStore } from "../src/SeqStore.ts"
import { seqStoreSuite } from "../testing/SeqStoreSuite.ts"

const [a, b] = [UserId.make("u_a"), UserId.make("u_b")]

/** A memory SeqStore that records each allocate call it answers, after a turn of the scheduler (calls interleave). */
const countingStore = Effect.gen(function*() {
  const inner = yield* Effect.service(SeqStore)
  const calls: Array<ReadonlyArray<readonly [UserId, number]>> = []
  return {
    calls,
    store: SeqStore.of({ ...inner, allocate: (requests) => Effect.sync(() => void calls.push(requests)).pipe(Effect.andThen(Effect.yieldNow), Effect.andThen(inner.allocate(requests))) })
  }
}).pipe(Effect.provide(SeqStore.layerMemory))

describe("SeqStore, reserving blocks", () => {
  it("hands out consecutive numbers from blocks, going to the store only when a user's block runs short", async () => {
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const { calls, store } = yield* countingStore
      const seqs = yield* reserving(store, 10)
      const firsts = [
        yield* seqs.allocate([[a, 3]]),
        yield* seqs.allocate([[a, 5], [b, 2]]),
        // 2 left of a's first block: the next one follows it, so the numbers go on from 9.
        yield* seqs.allocate([[a, 3], [a, 1]]),
        // More than a block at once.
        yield* seqs.allocate([[b, 25]])
      ]
      return { firsts, calls, current: [yield* seqs.current(a), yield* seqs.current(b), yield* store.current(a)] }
    })))
    expect(result.firsts).toEqual([new Map([[a, 1]]), new Map([[a, 4], [b, 1]]), new Map([[a, 9]]), new Map([[b, 3]])])
    expect(result.calls).toEqual([[[a, 10]], [[b, 10]], [[a, 10]], [[b, 25]]])
    // Handed out by this process, and reserved in the store.
    expect(result.current).toEqual([12, 27, 20])
  })

  it("a clean shutdown gives back what was reserved and not handed out: a restart goes on from the last number", async () => {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const { store } = yield* countingStore
      const first = yield* Effect.scoped(Effect.flatMap(reserving(store, 10), (before) => before.allocate([[a, 3], [b, 10]])))
      const given = [yield* store.current(a), yield* store.current(b)]
      const again = yield* Effect.scoped(Effect.flatMap(reserving(store, 10), (after) => after.allocate([[a, 1], [b, 1]])))
      return { first, given, again }
    }))
    expect(result.first).toEqual(new Map([[a, 1], [b, 1]]))
    // a's 4–10 given back; b's block was used up.
    expect(result.given).toEqual([3, 10])
    expect(result.again).toEqual(new Map([[a, 4], [b, 11]]))
  })

  it("after a stop without shutdown, starts past what was reserved: no number twice, the rest of the block skipped", async () => {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const { store } = yield* countingStore
      // A scope never closed: the process died.
      const before = yield* reserving(store, 10).pipe(Scope.provide(yield* Scope.make()))
      const first = yield* before.allocate([[a, 3]])
      const after = yield* Effect.scoped(Effect.flatMap(reserving(store, 10), (seqs) => seqs.allocate([[a, 1]])))
      return [first.get(a), after.get(a)]
    }))
    expect(result).toEqual([1, 11])
  })

  it("calls at once never hand out a number twice, and each user's numbers grow with the calls", () =>
    fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.array(fc.tuple(fc.constantFrom(a, b), fc.integer({ min: 1, max: 12 })), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 30 }),
        async (block, calls) => {
          const handed = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
            const { store } = yield* countingStore
            const seqs = yield* reserving(store, block)
            const answered: Array<{ readonly user: UserId; readonly first: number; readonly count: number }> = []
            yield* Effect.forEach(calls, (requests) =>
              Effect.map(seqs.allocate(requests), (firsts) => {
                for (const [user, first] of firsts) {
                  const count = requests.filter(([u]) => u === user).reduce((sum, [, n]) => sum + n, 0)
                  answered.push({ user, first, count })
                }
              }), { concurrency: "unbounded" })
            return answered
          })))
          for (const user of [a, b]) {
            const ranges = handed.filter((h) => h.user === user)
            const numbers = ranges.flatMap(({ count, first }) => Array.from({ length: count }, (_, i) => first + i))
            expect(new Set(numbers).size).toBe(numbers.length)
            // In the order the calls were answered, each starts past the one before.
            ranges.forEach((range, i) => {
              if (i > 0) expect(range.first).toBeGreaterThan(ranges[i - 1]!.first + ranges[i - 1]!.count - 1)
            })
          }
        }
      ),
      { numRuns: 200 }
    ))
})

seqStoreSuite("reserving blocks of 4 over memory", layerReserving(4).pipe(Layer.provide(SeqStore.layerMemory)))
