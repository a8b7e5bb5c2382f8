import { ServiceRegistry, type ServiceInstance } from "@im/ports/ServiceRegistry"
import { Context, Effect, Layer, Stream } from "effect"
import * as Vital from "@im/ports/Vital"

/** Which WebSocket a client that logs in should connect to. */
export class WsDirectory extends Context.Service<WsDirectory, {
  /** A gateway's WebSocket URL, or undefined when clients use the server's own `/ws`. */
  readonly pick: Effect.Effect<string | undefined>
}>()("@im/api/WsDirectory") {
  /** Standalone: the WebSocket is on the same server as the API. */
  static readonly layerSameServer = Layer.succeed(WsDirectory, WsDirectory.of({ pick: Effect.succeed(undefined) }))

  /** The cluster: the healthy ws gateways of the registry (their `ws` meta), round-robin. */
  static readonly layerRegistry = Layer.effect(
    WsDirectory,
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      let gateways: ReadonlyArray<ServiceInstance> = []
      let next = 0
      // A watch that ends would leave the list as it was for good (Vital: the service stops).
      yield* Vital.forkScoped(
        "following the ws gateways, for the addresses login hands out",
        registry.watch("ws").pipe(
          Stream.runForEach((current) => Effect.sync(() => void (gateways = current.filter((g) => g.meta?.["ws"] !== undefined))))
        )
      )
      return WsDirectory.of({
        pick: Effect.sync(() => gateways.length === 0 ? undefined : gateways[next++ % gateways.length]!.meta!["ws"])
      })
    })
  )
}
