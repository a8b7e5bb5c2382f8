import { UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { numberedMessage } from "@im/ports/testing/Fixtures"
import { Pusher } from "@im/pusher/Pusher"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { describe, expect, it } from "vitest"
import { mergeUpTo, pushAhead } from "../src/PushAhead.ts"

const [a, b] = [UserId.make("u_a"), UserId.make("u_b")]

/** Push `n`: message n's entry in b's inbox under seq n. */
const entry = (n: number): ReadonlyArray<Delivery> => [{ user_id: b, seq: n, message: numberedMessage(n, a, b) }]
const seqs = (calls: ReadonlyArray<ReadonlyArray<Delivery>>) => calls.map((call) => call.map((d) => d.seq))

/**
 * A pusher that records each call and holds it until the test lets it go: `release(i)` lets
 * call i finish (calls are numbered from 0 in the order made).
 */
const gatedPusher = Effect.gen(function*() {
  const calls: Array<ReadonlyArray<Delivery>> = []
  const gates: Array<Deferred.Deferred<void>> = []
  const gate = (i: number) => Effect.sync(() => gates[i] ??= Deferred.makeUnsafe<void>())
  const started = (count: number) => Effect.repeat(Effect.sync(() => calls.length), { until: (made) => made >= count })
  const pusher = Pusher.of({
    push: (deliveries) =>
      Effect.suspend(() => gate(calls.push(deliveries) - 1)).pipe(Effect.flatMap(Deferred.await)),
    signal: () => Effect.void
  })
  return {
    pusher,
    calls,
    started,
    release: (i: number) => Effect.flatMap(gate(i), (d) => Deferred.succeed(d, undefined))
  }
})

describe("pushAhead", () => {
  it("returns once the entries are in the line; pushes them in order, what waited meanwhile in one call", async () => {
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedPusher
      const ahead = yield* pushAhead(gated.pusher, { capacity: 4, maxEntries: 100 })
      yield* ahead.push(entry(1))
      yield* gated.started(1)
      // Call 0 is held: these return at once all the same.
      yield* ahead.push(entry(2))
      yield* ahead.push(entry(3))
      yield* ahead.push(entry(4))
      const whileHeld = seqs(gated.calls)
      yield* gated.release(0)
      yield* gated.started(2)
      yield* gated.release(1)
      yield* ahead.push(entry(5))
      yield* gated.started(3)
      yield* gated.release(2)
      return { whileHeld, calls: seqs(gated.calls) }
    })))
    expect(result.whileHeld).toEqual([[1]])
    expect(result.calls).toEqual([[1], [2, 3, 4], [5]])
  })

  it("holds a push back while `capacity` pushes wait, and lets it go when one is taken", async () => {
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedPusher
      const ahead = yield* pushAhead(gated.pusher, { capacity: 2, maxEntries: 100 })
      yield* ahead.push(entry(1))
      yield* gated.started(1)
      yield* ahead.push(entry(2))
      yield* ahead.push(entry(3))
      // The line is full: this one waits.
      const fourth = yield* Effect.forkChild(ahead.push(entry(4)))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      const heldBack = fourth.pollUnsafe() === undefined
      yield* gated.release(0)
      yield* Fiber.join(fourth)
      yield* gated.started(2)
      yield* gated.release(1)
      yield* gated.started(3)
      yield* gated.release(2)
      return { heldBack, calls: seqs(gated.calls) }
    })))
    expect(result.heldBack).toBe(true)
    expect(result.calls).toEqual([[1], [2, 3], [4]])
  })

  it("when its scope closes, pushes what waits in the line before it ends", async () => {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const gated = yield* gatedPusher
      const scope = yield* Scope.make()
      const ahead = yield* pushAhead(gated.pusher, { capacity: 4, maxEntries: 100 }).pipe(Scope.provide(scope))
      yield* ahead.push(entry(1))
      yield* gated.started(1)
      yield* ahead.push(entry(2))
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      const closedEarly = closing.pollUnsafe() !== undefined
      yield* gated.release(0)
      yield* gated.started(2)
      yield* gated.release(1)
      yield* Fiber.join(closing)
      // Nothing more is taken once it ended.
      yield* ahead.push(entry(3))
      return { closedEarly, calls: seqs(gated.calls) }
    }))
    expect(result.closedEarly).toBe(false)
    expect(result.calls).toEqual([[1], [2]])
  })

  it("a push that dies is logged, and the pushes after it are made", async () => {
    const calls: Array<ReadonlyArray<Delivery>> = []
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const dying = Pusher.of({
        push: (deliveries) => Effect.suspend(() => calls.push(deliveries) === 1 ? Effect.die("boom") : Effect.void),
        signal: () => Effect.void
      })
      const ahead = yield* pushAhead(dying, { capacity: 1, maxEntries: 100 })
      yield* ahead.push(entry(1))
      yield* ahead.push(entry(2))
      yield* Effect.repeat(Effect.sync(() => calls.length), { until: (made) => made >= 2 })
      return seqs(calls)
    })))
    expect(result).toEqual([[1], [2]])
  })

  it("a push that is interrupted from within, or fails, is logged, and the pushes after it are made", async () => {
    const calls: Array<ReadonlyArray<Delivery>> = []
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const failing = Pusher.of({
        push: (deliveries) => {
          const made = calls.push(deliveries)
          return made === 1 ? Effect.interrupt : made === 2 ? Effect.fail("refused") as unknown as Effect.Effect<void> : Effect.void
        },
        signal: () => Effect.void
      })
      const ahead = yield* pushAhead(failing, { capacity: 1, maxEntries: 100 })
      for (const n of [1, 2, 3, 4]) yield* ahead.push(entry(n)).pipe(Effect.timeout("2 seconds"))
      yield* Effect.repeat(Effect.sync(() => calls.flat().length), { until: (entries) => entries >= 4 }).pipe(Effect.timeout("2 seconds"))
      return seqs(calls).flat()
    })))
    // 3 and 4 may have gone together.
    expect(result).toEqual([1, 2, 3, 4])
  })

  it("merges waiting pushes in order up to maxEntries entries a call; a larger one goes alone", () => {
    const pushes = [entry(1), entry(2), [...entry(3), ...entry(4), ...entry(5)], entry(6), entry(7)]
    expect(mergeUpTo(pushes, 2).map((call) => call.map((d) => d.seq))).toEqual([[1, 2], [3, 4, 5], [6, 7]])
    expect(mergeUpTo(pushes, 3).map((call) => call.map((d) => d.seq))).toEqual([[1, 2], [3, 4, 5], [6, 7]])
    expect(mergeUpTo(pushes, 4).map((call) => call.map((d) => d.seq))).toEqual([[1, 2], [3, 4, 5, 6], [7]])
    expect(mergeUpTo(pushes, 100).map((call) => call.map((d) => d.seq))).toEqual([[1, 2, 3, 4, 5, 6, 7]])
    expect(mergeUpTo([], 100)).toEqual([])
  })

  it("with capacity 0 is the pusher itself: a push returns when it is made", async () => {
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedPusher
      const ahead = yield* pushAhead(gated.pusher, { capacity: 0, maxEntries: 100 })
      const first = yield* Effect.forkChild(ahead.push(entry(1)))
      yield* gated.started(1)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      const returnedEarly = first.pollUnsafe() !== undefined
      yield* gated.release(0)
      yield* Fiber.join(first)
      return { returnedEarly, same: ahead === gated.pusher }
    })))
    expect(result).toEqual({ returnedEarly: false, same: true })
  })
})
