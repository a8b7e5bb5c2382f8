import { SessionId, UserId } from "@im/domain/Ids"
import { type GrpcRoutes, implement } from "@im/proto/Grpc"
import { Code, ConnectError } from "@im/proto/Errors"
import { type DeliverRequest, GatewayService, type KickRequest, type SignalRequest } from "@im/proto/gen/im/gateway/v1/gateway_pb"
import { deliveriesFromProto } from "@im/proto/MessageCodec"
import { Effect, Layer, Schema } from "effect"
import { Gateway } from "./Gateway.ts"

const decodeUser = Schema.decodeUnknownEffect(UserId)
const decodeSession = Schema.decodeUnknownEffect(SessionId)
const decodeUsers = Schema.decodeUnknownEffect(Schema.Array(UserId))

/** A gateway's gRPC server: `im.gateway.v1.GatewayService`, which the pushers call. */
export const GatewayGrpcServer: Layer.Layer<never, never, GrpcRoutes | Gateway> = implement(
  GatewayService,
  Effect.gen(function*() {
    const gateway = yield* Gateway
    return {
      deliver: (request: DeliverRequest) =>
        deliveriesFromProto(request.deliveries, request.batch).pipe(
          Effect.flatMap(gateway.deliver),
          Effect.as({})
        ),
      signal: (request: SignalRequest) =>
        decodeUsers(request.userIds).pipe(
          Effect.mapError(() => new ConnectError("user_ids must be user ids", Code.InvalidArgument)),
          Effect.flatMap((users) => gateway.signal(users, request.frameJson)),
          Effect.as({})
        ),
      kick: (request: KickRequest) =>
        decodeUser(request.userId).pipe(
          Effect.mapError(() => new ConnectError("user_id is not a user id", Code.InvalidArgument)),
          Effect.flatMap((user) =>
            request.sessionId === undefined
              ? gateway.kick(user, request.reason || "kicked")
              : decodeSession(request.sessionId).pipe(
                Effect.mapError(() => new ConnectError("session_id is not a session id", Code.InvalidArgument)),
                Effect.flatMap((sid) => gateway.kick(user, request.reason || "kicked", sid))
              )
          ),
          Effect.map((closed) => ({ closed }))
        )
    }
  }),
  { toConnectError: (error: never) => error }
)
