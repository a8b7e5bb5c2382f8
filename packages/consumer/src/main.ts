import * as ConsulRegistry from "@im/consul/ConsulRegistry"
import * as DbGrpc from "@im/db/DbGrpc"
import * as KafkaMessageBus from "@im/kafka/KafkaMessageBus"
import * as Logging from "@im/platform/Logging"
import * as Main from "@im/platform/Main"
import * as MetricsServer from "@im/platform/MetricsServer"
import * as Postgres from "@im/platform/Postgres"
import * as Registration from "@im/platform/Registration"
import * as Tracing from "@im/observability/Tracing"
import * as PusherGrpc from "@im/pusher/PusherGrpc"
import * as RedisGroupMemberCache from "@im/redis/RedisGroupMemberCache"
import * as RedisSeqStore from "@im/redis/RedisSeqStore"
import * as SqlGroupStore from "@im/sql/SqlGroupStore"
import { Layer } from "effect"
import { Consumer } from "./Consumer.ts"

/**
 * The consumer: Kafka consumer group → seq allocation (Redis, floor in PostgreSQL) → db and
 * pusher found through the registry. It serves nothing but its metrics (METRICS_PORT, default
 * 8110); it registers so that its health shows.
 */
const ConsumerService = Registration.layer({ service: "consumer", host: "127.0.0.1", port: 0 }).pipe(
  Layer.merge(MetricsServer.layer({ host: "127.0.0.1", port: MetricsServer.CONSUMER_DEFAULT_PORT })),
  Layer.provide(Consumer.layer),
  Layer.provide([
    KafkaMessageBus.layer,
    Layer.mergeAll(RedisSeqStore.layerNoDeps, RedisGroupMemberCache.layerCached.pipe(Layer.provide(SqlGroupStore.layer))).pipe(Layer.provide(Postgres.layer)),
    DbGrpc.layerRegistry(),
    PusherGrpc.layerRegistry()
  ])
)

Main.run(ConsumerService.pipe(Layer.provide([ConsulRegistry.layer, Logging.layer]), Layer.provide(Tracing.layer("consumer"))))
