import { assert, describe, it } from "@effect/vitest"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { recordingVital, refusingRegistry } from "@im/ports/testing/Vitals"
import { Vital } from "@im/ports/Vital"
import { Deferred, Effect } from "effect"
import { discover, NoInstance } from "../src/Discovery.ts"
import { DbService } from "../src/gen/im/db/v1/db_pb.ts"

describe("discover", () => {
  it.live("follows the registry: no instance, then the one that registered", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const { pick } = yield* discover("db", DbService)
      assert.instanceOf(yield* Effect.flip(pick), NoInstance)
      yield* registry.register({ id: "db-1", service: "db", host: "127.0.0.1", port: 1 })
      yield* Effect.sleep("50 millis") // the watch delivers the change
      assert.isDefined(yield* pick)
    }).pipe(Effect.scoped, Effect.provide(ServiceRegistry.layerMemory)))

  it.live("a watch that ends for good tells the service's Vital: it stops rather than call instances that left", () =>
    Effect.gen(function*() {
      const { told, vital } = yield* recordingVital
      const what = yield* Effect.scoped(discover("db", DbService).pipe(Effect.andThen(Deferred.await(told)))).pipe(
        Effect.provideService(ServiceRegistry, yield* refusingRegistry),
        Effect.provideService(Vital, vital),
        Effect.timeout("2 seconds")
      )
      assert.strictEqual(what, "following the db instances")
    }))
})
