import { ApiRoutes } from "@im/api/ApiRoutes"
import { WebClientRoutes } from "@im/api/WebClientRoutes"
import { LiveSessions } from "@im/api/LiveSessions"
import { WsDirectory } from "@im/api/WsDirectory"
import { Passwords } from "@im/auth/Passwords"
import { Sessions } from "@im/auth/Sessions"
import type { Tokens } from "@im/auth/Tokens"
import { Chat } from "@im/chat/Chat"
import { FileMessages } from "@im/chat/FileMessages"
import { Consumer } from "@im/consumer/Consumer"
import { Db } from "@im/db/Db"
import { Gateway } from "@im/gateway/Gateway"
import { GatewayRoutes } from "@im/gateway/GatewayRoutes"
import * as CachedFriendStore from "@im/ports/CachedFriendStore"
import * as CachedGroupStore from "@im/ports/CachedGroupStore"
import { FileStore } from "@im/ports/FileStore"
import { MessageBus } from "@im/ports/MessageBus"
import type { PortError } from "@im/ports/PortError"
import { Presence } from "@im/ports/Presence"
import * as SeqStore from "@im/ports/SeqStore"
import { Gateways } from "@im/pusher/Gateways"
import { MetricsHttp } from "@im/observability/Prometheus"
import { Pusher } from "@im/pusher/Pusher"
import * as HttpServer from "@im/platform/HttpServer"
import type { Storage } from "@im/sql/SqlStorage"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"

/**
 * Partitions of the in-process bus. A conversation's messages share one (its order is kept);
 * the consumer stores the partitions' batches at the same time, so while one batch waits for the
 * database another is prepared, and a slow batch (a big group's) holds up only its partition's.
 * More is not faster: the batches share PGlite's one connection, each holding it for its
 * transaction, so each waits for the others'. At 3,300 messages/s (bench, standalone 1to1):
 * one partition p50 20 ms, two 31 ms, four 103 ms; at full speed one 6,304/s, two 6,918/s.
 */
export const DEFAULT_BUS_PARTITIONS = 2

export interface Listen {
  readonly host: string
  /** 0 picks a free port. */
  readonly port: number
  /** WebSocket frames above this size close the socket with 1009. */
  readonly maxFrameBytes: number
}

/** The stores standalone mode keeps its data in. */
export type { Storage }

/**
 * All six services in one process: the same service layers as the cluster, given in-process
 * neighbours (local Chat, local Gateways) instead of gRPC clients, and the in-process bus.
 * The HTTP API and the WebSocket endpoint share the one HTTP server.
 */
export const makeStandalone = <E1, R1, E2, R2, E3 = never>(options: {
  readonly storage: Layer.Layer<Storage, E1, R1>
  readonly tokens: Layer.Layer<Tokens, E2, R2>
  readonly listen: Listen
  /** Accepted messages the consumer may fall behind by before sends wait (default 5,000). */
  readonly maxPending?: number
  /** Partitions of the in-process bus, each consumed on its own (default DEFAULT_BUS_PARTITIONS). */
  readonly busPartitions?: number
  /** Where uploaded files are kept (default: in memory, served on a free port of 127.0.0.1). */
  readonly files?: Layer.Layer<FileStore, PortError>
  /**
   * The bus, given the defaults above: `npm start`'s keeps a journal in the data folder
   * (BusJournal), so that a send acknowledged survives a crash; default, in memory only.
   */
  readonly bus?: (options: { readonly maxPending: number; readonly partitions: number }) => Layer.Layer<MessageBus, E3>
}) => {
  const server = HttpServer.layer({
    host: options.listen.host,
    port: options.listen.port,
    maxFrameBytes: options.listen.maxFrameBytes
  })
  const ports = Layer.mergeAll(
    // Sends and the consumer read group members, and one-to-one sends check blocks, through
    // caches in this process; every write to either goes through the same decorators. The
    // consumer's seqs come from blocks reserved in the database (this server is its only user).
    Layer.mergeAll(CachedGroupStore.layerMemory, CachedFriendStore.layerMemory, SeqStore.layerReserving()).pipe(
      Layer.provideMerge(options.storage)
    ),
    (options.bus ?? MessageBus.layerMemory)({ maxPending: options.maxPending ?? 5_000, partitions: options.busPartitions ?? DEFAULT_BUS_PARTITIONS }),
    Presence.layerMemory,
    options.files ?? FileStore.layerLocal()
  )
  // The pusher reaches the one local gateway; chat uses it for typing, the consumer for entries.
  const gateway = Pusher.layer.pipe(Layer.provideMerge(Gateways.layerLocal), Layer.provideMerge(Gateway.layer))
  const services = Layer.mergeAll(Chat.layer.pipe(Layer.provide(FileMessages.layer)), Db.layer, Sessions.layer.pipe(Layer.provideMerge(options.tokens)), LiveSessions.layer, Passwords.layer, WsDirectory.layerSameServer).pipe(
    Layer.provideMerge(gateway)
  )
  const http = Gateway.closeSessionsOnShutdown.pipe(
    Layer.provideMerge(HttpRouter.serve(Layer.mergeAll(ApiRoutes, GatewayRoutes, WebClientRoutes, MetricsHttp))),
    Layer.provideMerge(server)
  )
  return Layer.mergeAll(http, Consumer.layer).pipe(Layer.provideMerge(services), Layer.provideMerge(ports))
}
