import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as KafkaMessageBus from "@im/kafka/KafkaMessageBus"
import * as Address from "@im/platform/Address"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import * as MetricsServer from "@im/platform/MetricsServer"
import * as Postgres from "@im/platform/Postgres"
import * as Registration from "@im/platform/Registration"
import * as Tracing from "@im/observability/Tracing"
import { serve } from "@im/proto/Grpc"
import * as PusherGrpc from "@im/pusher/PusherGrpc"
import * as S3FileStore from "@im/s3/S3FileStore"
import * as SqlFileRecords from "@im/sql/SqlFileRecords"
import * as SqlFriendStore from "@im/sql/SqlFriendStore"
import * as RedisBlockCache from "@im/redis/RedisBlockCache"
import * as RedisGroupMemberCache from "@im/redis/RedisGroupMemberCache"
import * as SqlGroupStore from "@im/sql/SqlGroupStore"
import * as SqlUserStore from "@im/sql/SqlUserStore"
import { Effect, Layer } from "effect"
import { Chat } from "./Chat.ts"
import { ChatGrpcServer } from "./ChatGrpc.ts"
import { FileMessages } from "./FileMessages.ts"

/** The chat service: gRPC ChatService on CHAT_HOST:CHAT_PORT, publishing to Kafka. */
const ChatService = Layer.unwrap(Effect.gen(function*() {
  const { advertise, host, port } = yield* Address.config("CHAT", Address.DefaultPorts.chat)
  return Registration.layer({ service: "chat", host: advertise, port }).pipe(
    Layer.merge(MetricsServer.layer({ host, port: MetricsServer.defaultPort(port) })),
    Layer.provide(serve(ChatGrpcServer, { host, port })),
    Layer.provide(Chat.layer),
    Layer.provide(FileMessages.layer),
    Layer.provide([
      KafkaMessageBus.layer,
      PusherGrpc.layerRegistry(),
      S3FileStore.layer,
      Layer.mergeAll(SqlUserStore.layer, RedisGroupMemberCache.layerCached.pipe(Layer.provide(SqlGroupStore.layer)), SqlFileRecords.layer, RedisBlockCache.layerCached.pipe(Layer.provide(SqlFriendStore.layer))).pipe(Layer.provide(Postgres.layer))
    ])
  )
}))

Main.run(ChatService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer]), Layer.provide(Tracing.layer("chat"))))
