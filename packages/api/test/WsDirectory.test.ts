import { assert, describe, it } from "@effect/vitest"
import { PortError } from "@im/ports/PortError"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import * as Vital from "@im/ports/Vital"
import { Deferred, Effect, Layer, Stream } from "effect"
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
      const told = yield* Deferred.make<string>()
      const registry = yield* Effect.provide(Effect.service(ServiceRegistry), ServiceRegistry.layerMemory)
      const refusing = Layer.succeed(ServiceRegistry, ServiceRegistry.of({
        ...registry,
        watch: () => Stream.fail(new PortError({ port: "ServiceRegistry", operation: "watch", retryable: false, cause: "403 ACL not found" }))
      }))
      const vital = Layer.succeed(Vital.Vital, { ended: (what) => Deferred.succeed(told, what).pipe(Effect.asVoid) })
      const what = yield* Effect.scoped(Layer.build(WsDirectory.layerRegistry.pipe(Layer.provide([refusing, vital]))).pipe(
        Effect.andThen(Deferred.await(told))
      )).pipe(Effect.timeout("2 seconds"))
      assert.strictEqual(what, "following the ws gateways, for the addresses login hands out")
    }))
})
