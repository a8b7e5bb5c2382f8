import { numberedMessage } from "@im/ports/testing/Fixtures"
import { assert, describe, it } from "@effect/vitest"
import { GatewayId, SessionId, UserId } from "@im/domain/Ids"
import type { Delivery } from "@im/domain/Message"
import { Gateway, type Session } from "@im/gateway/Gateway"
import { GatewayGrpcServer } from "@im/gateway/GatewayGrpc"
import { Presence } from "@im/ports/Presence"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { GrpcServer, serve } from "@im/proto/Grpc"
import * as Metrics from "@im/observability/Metrics"
import { Context, Duration, Effect, Exit, Layer, Metric, Scope } from "effect"
import { Gateways } from "../src/Gateways.ts"
import { Pusher } from "../src/Pusher.ts"
import { layerGrpc, PusherGrpcServer } from "../src/PusherGrpc.ts"

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")

const delivery = (user: UserId, seq: number): Delivery => ({ user_id: user, seq, message: numberedMessage(seq, alice, bob) })

/** A session that records the frames it is given. */
const recordingSession = (user: UserId, id: string) => {
  const frames: Array<any> = []
  const session: Session = { id, user, sid: SessionId.make(`sn-${id}`), offer: (frame) => (frames.push(JSON.parse(frame)), true), close: () => Effect.void }
  return { session, frames }
}

/** A gateway served over gRPC on a free port and registered as `ws` under its id, for `scope`. */
const startGateway = (id: string, scope: Scope.Scope) =>
  Effect.gen(function*() {
    const gateway = yield* Gateway.make({
      id: GatewayId.make(id),
      heartbeatTimeout: Duration.seconds(60),
      sendTimeout: Duration.seconds(10),
      sendQueueCapacity: 100,
      dropMarkedPushes: false
    })
    const context = yield* Layer.build(serve(GatewayGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
      Layer.provide(Layer.succeed(Gateway, gateway))
    ))
    const { port } = Context.get(context, GrpcServer)
    const registry = yield* ServiceRegistry
    yield* registry.register({ id, service: "ws", host: "127.0.0.1", port })
    return gateway
  }).pipe(Scope.provide(scope))

describe("pusher over gRPC to gateways over gRPC", () => {
  it.live("routes each entry only to the gateways that hold its user, and stops calling a gateway that left", () =>
    Effect.gen(function*() {
      const gw1Scope = yield* Scope.make()
      const gw2Scope = yield* Scope.make()
      const gw1 = yield* startGateway("gw-1", gw1Scope)
      const gw2 = yield* startGateway("gw-2", gw2Scope)
      const a = recordingSession(alice, "a-1")
      const b = recordingSession(bob, "b-1")
      yield* gw1.attach(a.session)
      yield* gw2.attach(b.session)

      const pusherServer = yield* Layer.build(serve(PusherGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
        Layer.provide(Pusher.layer),
        Layer.provide(Gateways.layerRegistry())
      ))
      const { port } = Context.get(pusherServer, GrpcServer)
      const pusher = Context.get(yield* Layer.build(layerGrpc(`http://127.0.0.1:${port}`)), Pusher)

      yield* Effect.sleep("100 millis") // the registry watch delivers the current gateways
      yield* pusher.push([delivery(alice, 1), delivery(bob, 1), delivery(alice, 2)])
      assert.deepStrictEqual(a.frames.map((f) => [f.type, f.seq, f.message.content]), [["message", 1, "#1"], ["message", 2, "#2"]])
      assert.deepStrictEqual(b.frames.map((f) => f.seq), [1])

      // gw-2 leaves: deregistered and stopped. Bob's push goes nowhere, alice's still arrives.
      yield* Scope.close(gw2Scope, Exit.void)
      yield* Effect.sleep("100 millis")
      yield* pusher.push([delivery(bob, 2), delivery(alice, 3)])
      assert.deepStrictEqual(b.frames.map((f) => f.seq), [1])
      assert.deepStrictEqual(a.frames.map((f) => f.seq), [1, 2, 3])
      yield* Scope.close(gw1Scope, Exit.void)
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.mergeAll(ServiceRegistry.layerMemory, Presence.layerMemory))
    ), 20_000)
})

describe("pusher client without a pusher", () => {
  it.live("a push to an unreachable pusher is dropped (clients pull), and counted as push_failed", () =>
    Effect.gen(function*() {
      const failed = Effect.map(Metric.value(Metrics.errors({ service: "consumer", kind: "push_failed" })), (state) => state.count)
      const pusher = Context.get(yield* Layer.build(layerGrpc("http://127.0.0.1:1", { timeoutMs: 2_000 })), Pusher)
      const before = yield* failed
      yield* pusher.push([delivery(bob, 1)])
      assert.strictEqual((yield* failed) - before, 1)
    }).pipe(Effect.scoped))
})
