import type { GatewayId, SessionId, UserId } from "@im/domain/Ids"
import { Presence } from "@im/ports/Presence"
import { Gateways } from "@im/pusher/Gateways"
import { Context, Effect, Layer } from "effect"

/**
 * The open WebSockets of a login session, wherever they are: after a logout they are closed
 * (4009), so a socket opened with a token of the session ends with it.
 */
export class LiveSessions extends Context.Service<LiveSessions, {
  /** Closes the user's sockets of `session` on every gateway; how many were closed. Best effort. */
  readonly close: (user: UserId, session: SessionId, reason: string) => Effect.Effect<number>
}>()("@im/api/LiveSessions") {
  /**
   * The gateways Presence says hold the user, reached through `Gateways`: the one local gateway
   * in standalone, their gRPC `GatewayService.Kick` in the cluster.
   */
  static readonly layer = Layer.effect(
    LiveSessions,
    Effect.gen(function*() {
      const presence = yield* Presence
      const gateways = yield* Gateways

      const close = Effect.fn("LiveSessions.close")(function*(user: UserId, session: SessionId, reason: string) {
        const located = yield* presence.lookup([user]).pipe(
          Effect.catch((error) =>
            Effect.as(
              Effect.logWarning("presence lookup failed; the session's sockets stay open", error),
              new Map<UserId, ReadonlyArray<GatewayId>>()
            )
          )
        )
        const closed = yield* Effect.forEach(located.get(user) ?? [], (gateway) =>
          gateways.kick(gateway, user, reason, session).pipe(
            Effect.catch((error) => Effect.as(Effect.logWarning("closing a session's sockets failed", { gateway, error }), 0))
          ), { concurrency: "unbounded" })
        return closed.reduce((sum, n) => sum + n, 0)
      })

      return LiveSessions.of({ close })
    })
  )
}
