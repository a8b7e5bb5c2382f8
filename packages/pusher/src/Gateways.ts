import type { GatewayId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { Gateway } from "@im/gateway/Gateway"
import { Context, Data, Effect, Layer } from "effect"

export class GatewayUnreachable extends Data.TaggedError("GatewayUnreachable")<{
  readonly gateway: GatewayId
  readonly cause?: unknown
}> {}

/** How the pusher reaches a gateway instance by its id. */
export class Gateways extends Context.Service<Gateways, {
  readonly deliver: (gateway: GatewayId, deliveries: ReadonlyArray<Delivery>) => Effect.Effect<void, GatewayUnreachable>
}>()("@im/pusher/Gateways") {
  /** The one gateway of this process (standalone). */
  static readonly layerLocal = Layer.effect(
    Gateways,
    Effect.gen(function*() {
      const local = yield* Gateway
      return Gateways.of({
        deliver: (gateway, deliveries) =>
          gateway === local.config.id ? local.deliver(deliveries) : Effect.fail(new GatewayUnreachable({ gateway }))
      })
    })
  )
}
