import type { GatewayId, SessionId, UserId } from "@im/domain/Ids"
import { Gateway } from "@im/gateway/Gateway"
import { type EffectClient, makeClient } from "@im/proto/EffectConnect"
import { GatewayService } from "@im/proto/gen/im/gateway/v1/gateway_pb"
import { Presence } from "@im/ports/Presence"
import { type ServiceInstance, ServiceRegistry } from "@im/ports/ServiceRegistry"
import { Context, Effect, Layer, Scope, Stream } from "effect"

/**
 * The open WebSockets of a login session, wherever they are: after a logout they are closed
 * (4009), so a socket opened with a token of the session ends with it.
 */
export class LiveSessions extends Context.Service<LiveSessions, {
  /** Closes the user's sockets of `session` on every gateway; how many were closed. Best effort. */
  readonly close: (user: UserId, session: SessionId, reason: string) => Effect.Effect<number>
}>()("@im/api/LiveSessions") {
  /** Standalone: the one gateway of this process. */
  static readonly layerLocal = Layer.effect(
    LiveSessions,
    Effect.map(Effect.service(Gateway), (gateway) =>
      LiveSessions.of({
        close: (user, session, reason) => gateway.kick(user, reason, session)
      }))
  )

  /**
   * The cluster: the gateways Presence says hold the user, called through their gRPC
   * `GatewayService.Kick` at the address the registry gives for their id (service `ws`).
   */
  static readonly layerRegistry = (options: { readonly timeoutMs?: number } = {}) =>
    Layer.effect(
      LiveSessions,
      Effect.gen(function*() {
        const presence = yield* Presence
        const registry = yield* ServiceRegistry
        const scope = yield* Effect.scope
        let instances = new Map<string, ServiceInstance>()
        yield* registry.watch("ws").pipe(
          Stream.runForEach((current) => Effect.sync(() => void (instances = new Map(current.map((i) => [i.id, i]))))),
          Effect.catch((error) => Effect.logError("gateway watch ended", error)),
          Effect.forkScoped
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

        const kickOn = (gateway: GatewayId, user: UserId, session: SessionId, reason: string) =>
          Effect.suspend(() => {
            const instance = instances.get(gateway)
            if (instance === undefined) {
              return Effect.as(Effect.logWarning("a gateway holding the user is not in the registry", { gateway }), 0)
            }
            return clientFor(instance).pipe(
              Effect.flatMap((client) => client.kick({ userId: user, reason, sessionId: session })),
              Effect.map((answer) => answer.closed),
              Effect.catch((error) => Effect.as(Effect.logWarning("closing a session's sockets failed", { gateway, error }), 0))
            )
          })

        const close = Effect.fn("LiveSessions.close")(function*(user: UserId, session: SessionId, reason: string) {
          const located = yield* presence.lookup([user]).pipe(
            Effect.catch((error) =>
              Effect.as(
                Effect.logWarning("presence lookup failed; the session's sockets stay open", error),
                new Map<UserId, ReadonlyArray<GatewayId>>()
              )
            )
          )
          const closed = yield* Effect.forEach(located.get(user) ?? [], (gateway) => kickOn(gateway, user, session, reason), {
            concurrency: "unbounded"
          })
          return closed.reduce((sum, n) => sum + n, 0)
        })

        return LiveSessions.of({ close })
      }).pipe(Effect.annotateLogs({ service: "api" }))
    )
}
