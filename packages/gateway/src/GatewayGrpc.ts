import { UserId } from "@im/domain/Ids"
import { type GrpcRoutes, implement } from "@im/proto/EffectConnect"
import { Code, ConnectError } from "@im/proto/Errors"
import { type DeliverRequest, GatewayService, type KickRequest } from "@im/proto/gen/im/gateway/v1/gateway_pb"
import { deliveryFromProto } from "@im/proto/MessageCodec"
import { Effect, Layer, Schema } from "effect"
import { Gateway } from "./Gateway.ts"

const decodeUser = Schema.decodeUnknownEffect(UserId)

/** A gateway's gRPC server: `im.gateway.v1.GatewayService`, which the pushers call. */
export const GatewayGrpcServer: Layer.Layer<never, never, GrpcRoutes | Gateway> = implement(
  GatewayService,
  Effect.gen(function*() {
    const gateway = yield* Gateway
    return {
      deliver: (request: DeliverRequest) =>
        Effect.forEach(request.deliveries, deliveryFromProto).pipe(
          Effect.flatMap(gateway.deliver),
          Effect.as({})
        ),
      kick: (request: KickRequest) =>
        decodeUser(request.userId).pipe(
          Effect.mapError(() => new ConnectError("user_id is not a user id", Code.InvalidArgument)),
          Effect.flatMap((user) => gateway.kick(user, request.reason || "kicked")),
          Effect.map((closed) => ({ closed }))
        )
    }
  }),
  { toConnectError: (error: never) => error }
)
