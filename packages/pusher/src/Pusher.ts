import type { GatewayId, UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import * as Metrics from "@im/observability/Metrics"
import { Presence } from "@im/ports/Presence"
import { Context, Effect, Layer, LogLevel, Metric } from "effect"
import { Gateways } from "./Gateways.ts"

/**
 * The pusher: sends stored entries to the gateways that hold their users' connections (and
 * only those). Best effort: a push that fails is recovered by the client's pull.
 */
export class Pusher extends Context.Service<Pusher, {
  readonly push: (deliveries: ReadonlyArray<Delivery>) => Effect.Effect<void>
  /** Passes a live-only frame (typing) to the users' connected sessions; nothing is stored or retried. */
  readonly signal: (users: ReadonlyArray<UserId>, frame: string) => Effect.Effect<void>
}>()("@im/pusher/Pusher") {
  static readonly layer = Layer.effect(
    Pusher,
    Effect.gen(function*() {
      const presence = yield* Presence
      const gateways = yield* Gateways

      const sent = Metrics.pusherDeliveries({ outcome: "sent" })
      const failed = Metrics.pusherDeliveries({ outcome: "failed" })
      const offline = Metrics.pusherDeliveries({ outcome: "offline" })

      const push = Effect.fn("Pusher.push")(function*(deliveries: ReadonlyArray<Delivery>) {
        if (deliveries.length === 0) return
        yield* Metric.update(Metrics.pusherPushSize, deliveries.length)
        const users = [...new Set(deliveries.map((delivery) => delivery.user_id))]
        const located = yield* presence.lookup(users).pipe(
          Effect.catch((error) =>
            Effect.logWarning("presence lookup failed; clients will pull", error).pipe(
              Effect.andThen(Metrics.error("pusher", "presence_unavailable")),
              Effect.as(new Map<UserId, ReadonlyArray<GatewayId>>())
            )
          )
        )
        const byGateway = new Map<GatewayId, Array<Delivery>>()
        let nowhere = 0
        for (const delivery of deliveries) {
          const holders = located.get(delivery.user_id) ?? []
          if (holders.length === 0) nowhere++
          for (const gateway of holders) {
            let batch = byGateway.get(gateway)
            if (batch === undefined) byGateway.set(gateway, batch = [])
            batch.push(delivery)
          }
        }
        yield* Metrics.increment(offline, nowhere)
        yield* Effect.forEach(
          byGateway,
          ([gateway, batch]) =>
            gateways.deliver(gateway, batch).pipe(
              Effect.tap(() =>
                Effect.when(
                  Effect.logDebug("pushed", { gateway, entries: batch.map((d) => `${d.message.server_id}@${d.user_id}#${d.seq}`) }),
                  LogLevel.isEnabled("Debug")
                )
              ),
              Effect.andThen(Metrics.increment(sent, batch.length)),
              Effect.catch((error) =>
                Effect.logWarning("push to a gateway failed; clients will pull", error).pipe(
                  Effect.andThen(Metrics.increment(failed, batch.length)),
                  Effect.andThen(Metrics.error("pusher", "gateway_unreachable"))
                )
              )
            ),
          { concurrency: "unbounded", discard: true }
        )
      }, Metrics.timed(Metrics.pusherPushDuration))

      const signal = Effect.fn("Pusher.signal")(function*(users: ReadonlyArray<UserId>, frame: string) {
        if (users.length === 0) return
        const located = yield* presence.lookup(users).pipe(
          Effect.catch(() => Effect.succeed(new Map<UserId, ReadonlyArray<GatewayId>>()))
        )
        const byGateway = new Map<GatewayId, Array<UserId>>()
        for (const [user, gateways] of located) {
          for (const gateway of gateways) {
            let batch = byGateway.get(gateway)
            if (batch === undefined) byGateway.set(gateway, batch = [])
            batch.push(user)
          }
        }
        yield* Effect.forEach(byGateway, ([gateway, batch]) => Effect.ignore(gateways.signal(gateway, batch, frame)), {
          concurrency: "unbounded",
          discard: true
        })
      })

      return Pusher.of({ push, signal })
    }).pipe(Effect.annotateLogs({ service: "pusher" }))
  )
}
