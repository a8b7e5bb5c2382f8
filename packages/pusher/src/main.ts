import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as Address from "@im/platform/Address"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import * as MetricsServer from "@im/platform/MetricsServer"
import * as Registration from "@im/platform/Registration"
import * as Tracing from "@im/observability/Tracing"
import { serve } from "@im/proto/Grpc"
import * as RedisPresence from "@im/redis/RedisPresence"
import { Effect, Layer } from "effect"
import { Gateways } from "./Gateways.ts"
import { Pusher } from "./Pusher.ts"
import { PusherGrpcServer } from "./PusherGrpc.ts"

/** The pusher: gRPC PusherService on PUSHER_HOST:PUSHER_PORT; Presence in Redis, gateways from the registry. */
const PusherService = Layer.unwrap(Effect.gen(function*() {
  const { advertise, host, port } = yield* Address.config("PUSHER", Address.DefaultPorts.pusher)
  return Registration.layer({ service: "pusher", host: advertise, port }).pipe(
    Layer.merge(MetricsServer.layer({ host, port: MetricsServer.defaultPort(port) })),
    Layer.provide(serve(PusherGrpcServer, { host, port })),
    Layer.provide(Pusher.layer),
    Layer.provide([RedisPresence.layer, Gateways.layerRegistry()])
  )
}))

Main.run(PusherService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer]), Layer.provide(Tracing.layer("pusher"))))
