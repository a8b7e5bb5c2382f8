import { discover, type NoInstance } from "@im/proto/Discovery"
import { type EffectClient, type GrpcRoutes, implement, makeClient } from "@im/proto/Grpc"
import { UserId } from "@im/domain/Ids"
import { Code, ConnectError } from "@im/proto/Errors"
import { type PushRequest, PusherService, type SignalRequest } from "@im/proto/gen/im/pusher/v1/pusher_pb"
import { deliveriesFromProto, deliveriesToProto } from "@im/proto/MessageCodec"
import * as Metrics from "@im/observability/Metrics"
import { Effect, Layer, Schema } from "effect"
import { Pusher } from "./Pusher.ts"

const decodeUsers = Schema.decodeUnknownEffect(Schema.Array(UserId))

/** The pusher's gRPC server: `im.pusher.v1.PusherService` over the local Pusher. */
export const PusherGrpcServer: Layer.Layer<never, never, GrpcRoutes | Pusher> = implement(
  PusherService,
  Effect.gen(function*() {
    const pusher = yield* Pusher
    return {
      push: (request: PushRequest) =>
        deliveriesFromProto(request.deliveries, request.batch).pipe(Effect.flatMap(pusher.push), Effect.as({})),
      signal: (request: SignalRequest) =>
        decodeUsers(request.userIds).pipe(
          Effect.mapError(() => new ConnectError("user_ids must be user ids", Code.InvalidArgument)),
          Effect.flatMap((users) => pusher.signal(users, request.frameJson)),
          Effect.as({})
        )
    }
  }),
  { toConnectError: (error: never) => error }
)

const remote = (client: Effect.Effect<EffectClient<typeof PusherService>, NoInstance>) =>
  Pusher.of({
    push: (deliveries) =>
      client.pipe(
        Effect.flatMap((client) => client.push({ batch: deliveriesToProto(deliveries) })),
        Effect.asVoid,
        Effect.catch((error) => Effect.andThen(Effect.logWarning("push failed; clients will pull", error.message), Metrics.error("consumer", "push_failed")))
      ),
    signal: (users, frame) =>
      client.pipe(
        Effect.flatMap((client) => client.signal({ userIds: [...users], frameJson: frame })),
        Effect.asVoid,
        Effect.catch((error) => Effect.logDebug("signal failed", error.message))
      )
  })

/** Pusher as a gRPC client of a pusher at `baseUrl`. Best effort, like the local one: failures are logged. */
export const layerGrpc = (baseUrl: string, options: { readonly timeoutMs?: number } = {}) =>
  Layer.effect(
    Pusher,
    Effect.map(makeClient(PusherService, baseUrl, { timeoutMs: options.timeoutMs ?? 5_000 }), (client) => remote(Effect.succeed(client)))
  )

/** Pusher as a gRPC client of the healthy pushers in the registry, round-robin. */
export const layerRegistry = (options: { readonly timeoutMs?: number } = {}) =>
  Layer.effect(
    Pusher,
    Effect.map(discover("pusher", PusherService, { timeoutMs: options.timeoutMs ?? 5_000 }), ({ pick }) => remote(pick))
  )
