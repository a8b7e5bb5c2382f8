import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, References, Scheduler } from "effect"
import { withinDeadline } from "../src/GatewayRoutes.ts"

const late = () => Effect.succeed("too late")

describe("withinDeadline (the send path's WS_SEND_TIMEOUT)", () => {
  it.live("a call that ends in time gives its own outcome, success or failure", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* withinDeadline(Effect.succeed("at once"), 50, late), "at once")
      assert.strictEqual(yield* withinDeadline(Effect.as(Effect.sleep("10 millis"), "soon"), 200, late), "soon")
      assert.deepStrictEqual(yield* Effect.exit(withinDeadline(Effect.andThen(Effect.sleep("10 millis"), Effect.fail("no")), 200, late)), Exit.fail("no"))
    }))

  it.live("past the deadline the call is interrupted, and then orElse runs", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const call = Effect.onInterrupt(Effect.never, () => Effect.sync(() => void events.push("call interrupted")))
      const started = Date.now()
      const outcome = yield* withinDeadline(call, 50, () => Effect.sync(() => (events.push("orElse"), "timed out")))
      assert.strictEqual(outcome, "timed out")
      assert.deepStrictEqual(events, ["call interrupted", "orElse"])
      assert.isAtLeast(Date.now() - started, 45)
    }))

  it.live("the call runs with the caller's context (its log annotations, say)", () =>
    Effect.gen(function*() {
      const seen = yield* withinDeadline(
        Effect.andThen(Effect.sleep("1 millis"), References.CurrentLogAnnotations),
        200,
        () => Effect.die("late")
      ).pipe(Effect.annotateLogs({ user: "u_alice" }))
      assert.deepStrictEqual(seen, { user: "u_alice" })
    }))

  it.live("a caller interrupted at any step leaves no call running (also when it yields just before waiting)", () =>
    Effect.gen(function*() {
      // Fibers yield every MaxOpsBeforeYield steps: callers with 0 to 40 steps before the
      // deadline's take each place of that yield.
      const running: Array<number> = []
      for (let steps = 0; steps <= 40; steps++) {
        let prefix: Effect.Effect<void> = Effect.void
        for (let i = 0; i < steps; i++) prefix = Effect.andThen(prefix, Effect.void)
        let callFiber: Fiber.Fiber<unknown, unknown> | undefined
        const call = Effect.withFiber((fiber) => {
          callFiber = fiber
          return Effect.never
        })
        const caller = yield* Effect.forkChild(Effect.andThen(prefix, withinDeadline(call, 600_000, late)), { startImmediately: true })
        yield* Fiber.interrupt(caller)
        if (callFiber !== undefined && callFiber.pollUnsafe() === undefined) running.push(steps)
      }
      assert.deepStrictEqual(running, [])
    }).pipe(Effect.provideService(Scheduler.MaxOpsBeforeYield, 32)))

  it.live("a deadline longer than a timer of the process can hold (about 24.8 days) does not fire at once", () =>
    Effect.gen(function*() {
      const outcome = yield* withinDeadline(Effect.as(Effect.sleep("30 millis"), "answered"), 30 * 24 * 3600 * 1000, late)
      assert.strictEqual(outcome, "answered")
    }))

  it.live("interrupting the caller interrupts the call, and the deadline does nothing after", () =>
    Effect.gen(function*() {
      const interrupted = yield* Deferred.make<void>()
      let orElseRan = false
      const caller = yield* Effect.forkChild(
        withinDeadline(Effect.onInterrupt(Effect.never, () => Deferred.succeed(interrupted, undefined)), 100, () =>
          Effect.sync(() => (orElseRan = true, "late")))
      )
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(caller)
      yield* Deferred.await(interrupted)
      yield* Effect.sleep("150 millis")
      assert.isFalse(orElseRan)
    }))
})
