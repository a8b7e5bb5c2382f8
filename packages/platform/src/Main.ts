import { NodeRuntime } from "@effect/platform-node"
import { Vital } from "@im/ports/Vital"
import { Cause, Data, Deferred, Effect, Exit, Layer } from "effect"
import * as Runtime from "effect/Runtime"

/** A fiber the service cannot do without ended (see Vital): the service stops. */
export class VitalEnded extends Data.TaggedError("VitalEnded")<{
  readonly what: string
  readonly cause: Cause.Cause<unknown>
}> {}

/**
 * Builds a service's layer and keeps it until interrupted, or until one of its vital fibers
 * ends: then the layer is released (the graceful shutdown the layers define) and this fails
 * with VitalEnded.
 */
export const launch = <E>(layer: Layer.Layer<never, E, Vital>): Effect.Effect<never, E | VitalEnded> =>
  Effect.gen(function*() {
    const ended = yield* Deferred.make<never, VitalEnded>()
    const vital = Layer.succeed(Vital, {
      ended: (what, cause) => Deferred.fail(ended, new VitalEnded({ what, cause })).pipe(Effect.asVoid)
    })
    return yield* Effect.raceFirst(Layer.launch(Layer.provide(layer, vital)), Deferred.await(ended))
  })

/**
 * Runs a service's layer until SIGINT or SIGTERM, then releases it and exits 0; a failure,
 * a vital fiber's end among them, exits non-zero as usual.
 */
export const run = <E>(layer: Layer.Layer<never, E, Vital>) =>
  launch(layer).pipe(NodeRuntime.runMain({
    teardown: (exit, onExit) =>
      Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  }))
