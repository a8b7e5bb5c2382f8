import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as MongoInboxStore from "@im/mongo/MongoInboxStore"
import * as Address from "@im/platform/Address"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import * as MetricsServer from "@im/platform/MetricsServer"
import * as Postgres from "@im/platform/Postgres"
import * as Registration from "@im/platform/Registration"
import * as Tracing from "@im/observability/Tracing"
import { serve } from "@im/proto/Grpc"
import * as SqlConversationStore from "@im/sql/SqlConversationStore"
import * as SqlHistoryStore from "@im/sql/SqlHistoryStore"
import { Effect, Layer } from "effect"
import { Db } from "./Db.ts"
import { DbGrpcServer } from "./DbGrpc.ts"

/** The db service: gRPC DbService on DB_HOST:DB_PORT; history in PostgreSQL, inboxes in MongoDB. */
const DbService = Layer.unwrap(Effect.gen(function*() {
  const { advertise, host, port } = yield* Address.config("DB", Address.DefaultPorts.db)
  return Registration.layer({ service: "db", host: advertise, port }).pipe(
    Layer.merge(MetricsServer.layer({ host, port: MetricsServer.defaultPort(port) })),
    Layer.provide(serve(DbGrpcServer, { host, port })),
    Layer.provide(Db.layer),
    Layer.provide([
      Layer.mergeAll(SqlHistoryStore.layer, SqlConversationStore.layer).pipe(Layer.provide(Postgres.layer)),
      MongoInboxStore.layer
    ])
  )
}))

Main.run(DbService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer]), Layer.provide(Tracing.layer("db"))))
