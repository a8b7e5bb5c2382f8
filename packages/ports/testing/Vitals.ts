import { Deferred, Effect, Stream } from "effect"
import { PortError } from "../src/PortError.ts"
import { ServiceRegistry } from "../src/ServiceRegistry.ts"
import { Vital } from "../src/Vital.ts"

/** A Vital that records the first vital fiber to end: `told` completes with its `what`. */
export const recordingVital = Effect.map(Deferred.make<string>(), (told) => ({
  told,
  vital: Vital.of({ ended: (what) => Deferred.succeed(told, what).pipe(Effect.asVoid) })
}))

/** The memory registry, except that every watch fails for good (as a refused ACL does). */
export const refusingRegistry = Effect.map(
  Effect.provide(Effect.service(ServiceRegistry), ServiceRegistry.layerMemory),
  (registry) =>
    ServiceRegistry.of({
      ...registry,
      watch: () => Stream.fail(new PortError({ port: "ServiceRegistry", operation: "watch", retryable: false, cause: "403 ACL not found" }))
    })
)
