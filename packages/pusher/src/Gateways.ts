import type { GatewayId, SessionId, UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { Gateway } from "@im/gateway/Gateway"
import { makeClient, type EffectClient } from "@im/proto/Grpc"
import { GatewayService } from "@im/proto/gen/im/gateway/v1/gateway_pb"
import { deliveriesToProto } from "@im/proto/MessageCodec"
import { ServiceRegistry, type ServiceInstance } from "@im/ports/ServiceRegistry"
import { Context, Data, Effect, Layer, Scope, Stream } from "effect"
import * as Vital from "@im/ports/Vital"

export class GatewayUnreachable extends Data.TaggedError("GatewayUnreachable")<{
  readonly gateway: GatewayId
  readonly cause?: unknown
}> {}

/** How the pusher reaches a gateway instance by its id. */
export class Gateways extends Context.Service<Gateways, {
  readonly deliver: (gateway: GatewayId, deliveries: ReadonlyArray<Delivery>) => Effect.Effect<void, GatewayUnreachable>
  /** Passes a live-only frame to the users' sessions on the gateway. */
  readonly signal: (gateway: GatewayId, users: ReadonlyArray<UserId>, frame: string) => Effect.Effect<void, GatewayUnreachable>
  /** Closes the user's sockets on the gateway (of one login session, if given); how many. */
  readonly kick: (gateway: GatewayId, user: UserId, reason: string, session?: SessionId) => Effect.Effect<number, GatewayUnreachable>
}>()("@im/pusher/Gateways") {
  /** The one gateway of this process (standalone). */
  static readonly layerLocal = Layer.effect(
    Gateways,
    Effect.gen(function*() {
      const local = yield* Gateway
      return Gateways.of({
        deliver: (gateway, deliveries) =>
          gateway === local.config.id ? local.deliver(deliveries) : Effect.fail(new GatewayUnreachable({ gateway })),
        signal: (gateway, users, frame) =>
          gateway === local.config.id ? local.signal(users, frame) : Effect.fail(new GatewayUnreachable({ gateway })),
        kick: (gateway, user, reason, session) =>
          gateway === local.config.id ? local.kick(user, reason, session) : Effect.fail(new GatewayUnreachable({ gateway }))
      })
    })
  )

  /**
   * Gateways found in the registry (service `ws`, instance id = gateway id), followed while the
   * layer lives: a gateway that leaves is not called again, one that joins is called at once.
   * One gRPC client per gateway address, kept for the layer's lifetime.
   */
  static readonly layerRegistry = (options: { readonly timeoutMs?: number } = {}) =>
    Layer.effect(
      Gateways,
      Effect.gen(function*() {
        const registry = yield* ServiceRegistry
        const scope = yield* Effect.scope
        let instances = new Map<string, ServiceInstance>()
        // A watch that ends would leave the gateways as they were for good (Vital: the service stops).
        yield* Vital.forkScoped(
          "following the ws gateways, to push to",
          registry.watch("ws").pipe(
            Stream.runForEach((current) => Effect.sync(() => void (instances = new Map(current.map((i) => [i.id, i])))))
          )
        )
        const clients = new Map<string, EffectClient<typeof GatewayService>>()
        const clientFor = (instance: ServiceInstance) =>
          Effect.suspend(() => {
            const url = `http://${instance.host}:${instance.port}`
            const cached = clients.get(url)
            if (cached !== undefined) return Effect.succeed(cached)
            return makeClient(GatewayService, url, { timeoutMs: options.timeoutMs ?? 5_000 }).pipe(
              Scope.provide(scope),
              Effect.tap((client) => Effect.sync(() => void clients.set(url, client)))
            )
          })
        const call = <A>(gateway: GatewayId, f: (client: EffectClient<typeof GatewayService>) => Effect.Effect<A, unknown>) =>
          Effect.suspend(() => {
            const instance = instances.get(gateway)
            if (instance === undefined) return Effect.fail(new GatewayUnreachable({ gateway }))
            return clientFor(instance).pipe(
              Effect.flatMap(f),
              Effect.mapError((cause) => new GatewayUnreachable({ gateway, cause }))
            )
          })
        return Gateways.of({
          deliver: (gateway, deliveries) =>
            Effect.asVoid(call(gateway, (client) => client.deliver({ batch: deliveriesToProto(deliveries) }))),
          signal: (gateway, users, frame) =>
            Effect.asVoid(call(gateway, (client) => client.signal({ userIds: [...users], frameJson: frame }))),
          kick: (gateway, user, reason, session) =>
            Effect.map(call(gateway, (client) => client.kick({ userId: user, reason, sessionId: session })), (answer) => answer.closed)
        })
      })
    )
}
