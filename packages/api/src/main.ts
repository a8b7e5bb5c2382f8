import { Passwords } from "@im/auth/Passwords"
import { Sessions } from "@im/auth/Sessions"
import { Tokens } from "@im/auth/Tokens"
import * as ChatGrpc from "@im/chat/ChatGrpc"
import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as DbGrpc from "@im/db/DbGrpc"
import * as Address from "@im/platform/Address"
import * as HttpServer from "@im/platform/HttpServer"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import { MetricsHttp } from "@im/observability/Prometheus"
import * as Tracing from "@im/observability/Tracing"
import * as Postgres from "@im/platform/Postgres"
import * as Registration from "@im/platform/Registration"
import * as RedisBlockCache from "@im/redis/RedisBlockCache"
import * as RedisGroupMemberCache from "@im/redis/RedisGroupMemberCache"
import * as RedisPresence from "@im/redis/RedisPresence"
import * as S3FileStore from "@im/s3/S3FileStore"
import * as SqlConversationStore from "@im/sql/SqlConversationStore"
import * as SqlFileRecords from "@im/sql/SqlFileRecords"
import * as SqlFriendStore from "@im/sql/SqlFriendStore"
import * as SqlGroupStore from "@im/sql/SqlGroupStore"
import * as SqlHistoryStore from "@im/sql/SqlHistoryStore"
import * as SqlSessionStore from "@im/sql/SqlSessionStore"
import * as SqlUserStore from "@im/sql/SqlUserStore"
import { Effect, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { ApiRoutes } from "./ApiRoutes.ts"
import { Gateways } from "@im/pusher/Gateways"
import { LiveSessions } from "./LiveSessions.ts"
import { WebClientRoutes } from "./WebClientRoutes.ts"
import { WsDirectory } from "./WsDirectory.ts"

/** The api service: the HTTP API (and the web client, WEB_DIR) on API_HOST:API_PORT; users in PostgreSQL, inboxes through db. */
const ApiService = Layer.unwrap(Effect.gen(function*() {
  const { advertise, host, port } = yield* Address.config("API", Address.DefaultPorts.api)
  return Registration.layer({ service: "api", host: advertise, port }).pipe(
    Layer.provide(HttpRouter.serve(Layer.mergeAll(ApiRoutes, WebClientRoutes, MetricsHttp)).pipe(Layer.provide(HttpServer.layer({ host, port })))),
    Layer.provide([Layer.mergeAll(SqlUserStore.layer, RedisGroupMemberCache.layerCached.pipe(Layer.provide(SqlGroupStore.layer)), SqlFileRecords.layer, RedisBlockCache.layerCached.pipe(Layer.provide(SqlFriendStore.layer)), SqlHistoryStore.layer, SqlConversationStore.layer).pipe(Layer.provide(Postgres.layer)), S3FileStore.layer, DbGrpc.layerRegistry(), ChatGrpc.layerRegistry(), WsDirectory.layerRegistry, Passwords.layer]),
    // Login sessions in PostgreSQL (what every gateway checks); a logout closes the session's
    // sockets on the gateways Presence (Redis) says hold the user.
    Layer.provide([
      Sessions.layer.pipe(Layer.provide([Tokens.layer, SqlSessionStore.layer.pipe(Layer.provide(Postgres.layer))])),
      LiveSessions.layer.pipe(Layer.provide([RedisPresence.layer, Gateways.layerRegistry()]))
    ])
  )
}))

Main.run(ApiService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer]), Layer.provide(Tracing.layer("api"))))
