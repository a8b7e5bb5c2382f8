import { assert, describe, it } from "@effect/vitest"
import { PortError } from "@im/ports/PortError"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import * as Vital from "@im/ports/Vital"
import { Deferred, Effect, Layer, Stream } from "effect"
import { Gateways } from "../src/Gateways.ts"

describe("Gateways.layerRegistry", () => {
  it.live("a watch of the gateways that ends for good tells the service's Vital: the pusher stops rather than push to a stale list", () =>
    Effect.gen(function*() {
      const told = yield* Deferred.make<string>()
      const registry = yield* Effect.provide(Effect.service(ServiceRegistry), ServiceRegistry.layerMemory)
      const refusing = Layer.succeed(ServiceRegistry, ServiceRegistry.of({
        ...registry,
        watch: () => Stream.fail(new PortError({ port: "ServiceRegistry", operation: "watch", retryable: false, cause: "403 ACL not found" }))
      }))
      const vital = Layer.succeed(Vital.Vital, { ended: (what) => Deferred.succeed(told, what).pipe(Effect.asVoid) })
      const what = yield* Effect.scoped(Layer.build(Gateways.layerRegistry().pipe(Layer.provide([refusing, vital]))).pipe(
        Effect.andThen(Deferred.await(told))
      )).pipe(Effect.timeout("2 seconds"))
      assert.strictEqual(what, "following the ws gateways, to push to")
    }))
})
