import * as Settings from "@im/ports/Settings"
import { Sessions } from "@im/auth/Sessions"
import { Tokens } from "@im/auth/Tokens"
import * as ChatGrpc from "@im/chat/ChatGrpc"
import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as Address from "@im/platform/Address"
import * as HttpServer from "@im/platform/HttpServer"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import { MetricsHttp } from "@im/observability/Prometheus"
import * as Tracing from "@im/observability/Tracing"
import * as Postgres from "@im/platform/Postgres"
import * as Registration from "@im/platform/Registration"
import { serve } from "@im/proto/Grpc"
import * as RedisPresence from "@im/redis/RedisPresence"
import * as SqlSessionStore from "@im/sql/SqlSessionStore"
import { Config, Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Gateway } from "./Gateway.ts"
import { GatewayGrpcServer } from "./GatewayGrpc.ts"
import { GatewayRoutes } from "./GatewayRoutes.ts"

const Health = HttpRouter.add("GET", "/health", HttpServerResponse.json({ status: "ok" }))

/**
 * A ws gateway: WebSockets on WS_HOST:WS_PORT, its GatewayService on WS_GRPC_PORT (registered
 * as `ws` under its gateway id, which is what Presence records), Chat found through the registry.
 */
const GatewayService = Layer.unwrap(Effect.gen(function*() {
  const { advertise, host, port } = yield* Address.config("WS", Address.DefaultPorts.ws)
  const grpcPort = yield* Config.Port("WS_GRPC_PORT").pipe(Config.withDefault(Address.DefaultPorts.wsGrpc))
  const maxFrameBytes = yield* Settings.int("WS_MAX_FRAME_BYTES", 65_536, { minimum: 1 })
  // What clients are told to connect to (login's ws_url): behind a proxy or port mapping, set it.
  const publicUrl = yield* Config.String("WS_PUBLIC_URL").pipe(Config.withDefault(`ws://${advertise}:${port}/ws`))
  const gateway = Gateway.layer.pipe(Layer.provide(RedisPresence.layer))
  // Login sessions are in PostgreSQL: a logout on the api is seen here at the next upgrade.
  const sessions = Sessions.layer.pipe(Layer.provide([Tokens.layer, SqlSessionStore.layer.pipe(Layer.provide(Postgres.layer))]))
  const http = HttpRouter.serve(Layer.mergeAll(GatewayRoutes, Health, MetricsHttp)).pipe(
    Layer.provide(HttpServer.layer({ host, port, maxFrameBytes }))
  )
  // Registered under the gateway's own id: the id Presence records and the pushers look up.
  const registration = Layer.unwrap(Effect.map(Effect.service(Gateway), (gateway) =>
    Registration.layer({ service: "ws", id: gateway.config.id, host: advertise, port: grpcPort, meta: { ws: publicUrl } })))
  return registration.pipe(
    Layer.provide(Gateway.closeSessionsOnShutdown),
    Layer.provide([serve(GatewayGrpcServer, { host, port: grpcPort }), http]),
    Layer.provide([gateway, ChatGrpc.layerRegistry(), sessions])
  )
}))

Main.run(GatewayService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer]), Layer.provide(Tracing.layer("ws"))))
