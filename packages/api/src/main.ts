import { Passwords } from "@im/auth/Passwords"
import { Tokens } from "@im/auth/Tokens"
import * as ChatGrpc from "@im/chat/ChatGrpc"
import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as DbGrpc from "@im/db/DbGrpc"
import * as Address from "@im/platform/Address"
import * as HttpServer from "@im/platform/HttpServer"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import * as Postgres from "@im/platform/Postgres"
import * as Registration from "@im/platform/Registration"
import * as SqlGroupStore from "@im/sql/SqlGroupStore"
import * as SqlUserStore from "@im/sql/SqlUserStore"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { ApiRoutes } from "./ApiRoutes.ts"
import { WsDirectory } from "./WsDirectory.ts"

/** The api service: the HTTP API on API_HOST:API_PORT; users in PostgreSQL, inboxes through db. */
const ApiService = Layer.unwrap(Effect.gen(function*() {
  const { advertise, host, port } = yield* Address.config("API", Address.DefaultPorts.api)
  return Registration.layer({ service: "api", host: advertise, port }).pipe(
    Layer.provide(HttpRouter.serve(ApiRoutes).pipe(Layer.provide(HttpServer.layer({ host, port })))),
    Layer.provide([Layer.mergeAll(SqlUserStore.layer, SqlGroupStore.layer).pipe(Layer.provide(Postgres.layer)), DbGrpc.layerRegistry(), ChatGrpc.layerRegistry(), WsDirectory.layerRegistry, Tokens.layer, Passwords.layer])
  )
}))

Main.run(ApiService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer])))
