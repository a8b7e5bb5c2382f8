import * as Vital from "@im/ports/Vital"
import { Effect, Exit, Layer, Option } from "effect"
import { describe, expect, it } from "vitest"
import { launch } from "../src/Main.ts"

describe("Main.launch", () => {
  /** A service with one vital fiber running `work`; `released` says whether its finalizer ran. */
  const service = (work: Effect.Effect<never, string>) => {
    const state = { released: false }
    const layer = Layer.effectDiscard(Effect.gen(function*() {
      yield* Effect.addFinalizer(() => Effect.sync(() => void (state.released = true)))
      yield* Vital.forkScoped("the work", work)
    }))
    return { layer, state }
  }

  it("stops the service, its finalizers first, and fails with VitalEnded when a vital fiber fails", async () => {
    const { layer, state } = service(Effect.sleep("20 millis").pipe(Effect.andThen(Effect.fail("boom"))))
    const exit = await Effect.runPromiseExit(launch(layer).pipe(Effect.timeout("2 seconds")))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error : undefined
    expect(error).toMatchObject({ _tag: "VitalEnded", what: "the work" })
    expect(String((error as { cause: unknown }).cause)).toContain("boom")
    expect(state.released).toBe(true)
  })

  it("keeps the service while its vital fibers run", async () => {
    const { layer, state } = service(Effect.never)
    const result = await Effect.runPromise(launch(layer).pipe(Effect.timeoutOption("200 millis")))
    expect(Option.isNone(result)).toBe(true)
    expect(state.released).toBe(true) // released by the timeout's interruption, not before
  })

  it("without a Vital (a test's layer) a vital fiber's end is only logged", async () => {
    const { layer, state } = service(Effect.fail("boom"))
    const result = await Effect.runPromise(Effect.scoped(Layer.build(layer).pipe(Effect.andThen(Effect.sleep("50 millis")), Effect.as("still up"))))
    expect(result).toBe("still up")
    expect(state.released).toBe(true)
  })
})

describe("Vital.forkScoped", () => {
  it("counts a fiber that just returns as ended too: it was to run as long as the service", async () => {
    const layer = Layer.effectDiscard(Vital.forkScoped("the watch", Effect.sleep("20 millis")))
    const exit = await Effect.runPromiseExit(launch(layer).pipe(Effect.timeout("2 seconds")))
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((reason) => reason._tag === "Fail")?.error : undefined
    expect(error).toMatchObject({ _tag: "VitalEnded", what: "the watch" })
    expect(String((error as { cause: unknown }).cause)).toContain("the watch returned")
  })
})
