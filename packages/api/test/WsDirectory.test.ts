import { assert, describe, it } from "@effect/vitest"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { recordingVital, refusingRegistry } from "@im/ports/testing/Vitals"
import { Vital } from "@im/ports/Vital"
import { Deferred, Effect, Layer } from "effect"
import { WsDirectory } from "../src/WsDirectory.ts"

describe("WsDirectory.layerRegistry", () => {
  it.live("hands out the registered gateways' WebSocket addresses in turn", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      yield* registry.register({ id: "gw-1", service: "ws", host: "127.0.0.1", port: 1, meta: { ws: "ws://a/ws" } })
      yield* registry.register({ id: "gw-2", service: "ws", host: "127.0.0.1", port: 2, meta: { ws: "ws://b/ws" } })
      const directory = yield* Layer.build(WsDirectory.layerRegistry)
      yield* Effect.sleep("50 millis") // the watch delivers the current gateways
      const { pick } = yield* Effect.provide(Effect.service(WsDirectory), Layer.succeedContext(directory))
      const picked = [yield* pick, yield* pick, yield* pick, yield* pick]
      assert.deepStrictEqual(new Set(picked), new Set(["ws://a/ws", "ws://b/ws"]), "both")
      assert.notStrictEqual(picked[0], picked[1], "in turn")
      assert.strictEqual(picked[0], picked[2])
    }).pipe(Effect.scoped, Effect.provide(ServiceRegistry.layerMemory)))

  it.live("a watch that ends for good tells the service's Vital: api stops rather than hand out a stale list", () =>
    Effect.gen(function*() {
      const { told, vital } = yield* recordingVital
      const what = yield* Effect.scoped(Layer.build(WsDirectory.layerRegistry).pipe(Effect.andThen(Deferred.await(told)))).pipe(
        Effect.provideService(ServiceRegistry, yield* refusingRegistry),
        Effect.provideService(Vital, vital),
        Effect.timeout("2 seconds")
      )
      assert.strictEqual(what, "following the ws gateways, for the addresses login hands out")
    }))
})
