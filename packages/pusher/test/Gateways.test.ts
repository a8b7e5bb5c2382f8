import { assert, describe, it } from "@effect/vitest"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { recordingVital, refusingRegistry } from "@im/ports/testing/Vitals"
import { Vital } from "@im/ports/Vital"
import { Deferred, Effect, Layer } from "effect"
import { Gateways } from "../src/Gateways.ts"

describe("Gateways.layerRegistry", () => {
  it.live("a watch of the gateways that ends for good tells the service's Vital: the pusher stops rather than push to a stale list", () =>
    Effect.gen(function*() {
      const { told, vital } = yield* recordingVital
      const what = yield* Effect.scoped(Layer.build(Gateways.layerRegistry()).pipe(Effect.andThen(Deferred.await(told)))).pipe(
        Effect.provideService(ServiceRegistry, yield* refusingRegistry),
        Effect.provideService(Vital, vital),
        Effect.timeout("2 seconds")
      )
      assert.strictEqual(what, "following the ws gateways, to push to")
    }))
})
