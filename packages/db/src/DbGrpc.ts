import { InvalidRange, ServiceUnavailable } from "@im/domain/Errors"
import { ServerId, UserId } from "@im/domain/Ids"
import { discover, type NoInstance } from "@im/proto/Discovery"
import { type EffectClient, type GrpcRoutes, implement, makeClient } from "@im/proto/Grpc"
import { Code, type ConnectError, errorDetailOf, toConnectError } from "@im/proto/Errors"
import { DbService, type ExistingRequest, type NewestRequest, type PullRequest, type SaveRequest } from "@im/proto/gen/im/db/v1/db_pb"
import type { InboxRef as InboxRefPb } from "@im/proto/gen/im/message/v1/message_pb"
import { decodeField, entryFromProto, entryToProto, messageFromProto, messageToProto } from "@im/proto/MessageCodec"
import type { InboxRef } from "@im/ports/InboxStore"
import { Effect, Layer } from "effect"
import { Db } from "./Db.ts"

const refToProto = (ref: InboxRef) => ({ userId: ref.user_id, seq: BigInt(ref.seq), serverId: ref.server_id })
const decodeUser = decodeField(UserId, "user_id")
const decodeServerId = decodeField(ServerId, "server_id")

/** Refs that came back from a db instance we called: already validated by it. */
const refFromProto = (ref: InboxRefPb): InboxRef => ({
  user_id: ref.userId as InboxRef["user_id"],
  seq: Number(ref.seq),
  server_id: ref.serverId as InboxRef["server_id"]
})

/** Refs that came in from a caller: validated. */
const refFromRequest = (ref: InboxRefPb) =>
  Effect.all({ user_id: decodeUser(ref.userId), seq: Effect.succeed(Number(ref.seq)), server_id: decodeServerId(ref.serverId) })

/** The db service's gRPC server: `im.db.v1.DbService` over the local Db. */
export const DbGrpcServer: Layer.Layer<never, never, GrpcRoutes | Db> = implement(
  DbService,
  Effect.gen(function*() {
    const db = yield* Db
    return {
      existing: (request: ExistingRequest) =>
        Effect.forEach(request.keys, (key) => Effect.all({ user_id: decodeUser(key.userId), server_id: decodeServerId(key.serverId) })).pipe(
          Effect.flatMap(db.existing),
          Effect.map((entries) => ({ entries: entries.map(refToProto) }))
        ),
      save: (request: SaveRequest) =>
        Effect.all([
          Effect.forEach(request.messages, messageFromProto),
          Effect.forEach(request.entries, refFromRequest),
          Effect.forEach(request.replayed, refFromRequest)
        ]).pipe(
          Effect.flatMap(([messages, entries, replayed]) => db.save(messages, entries, replayed)),
          Effect.map((earlier) => ({ earlier: earlier.map(refToProto) }))
        ),
      pull: (request: PullRequest) =>
        Effect.flatMap(decodeUser(request.userId), (user) => db.pull({
          user,
          after: Number(request.after),
          until: request.until === undefined ? undefined : Number(request.until),
          limit: request.limit
        })).pipe(Effect.map((page) => ({ entries: page.entries.map(entryToProto), through: BigInt(page.through), hasMore: page.has_more }))),
      newest: (request: NewestRequest) =>
        decodeUser(request.userId).pipe(Effect.flatMap(db.newest), Effect.map((seq) => ({ seq: BigInt(seq) })))
    }
  }),
  {
    toConnectError: (error: InvalidRange | ServiceUnavailable) =>
      toConnectError(error._tag === "InvalidRange" ? Code.InvalidArgument : Code.Unavailable, {
        tag: error._tag,
        message: error.message
      })
  }
)

const fromConnectError = (error: ConnectError) => {
  const detail = errorDetailOf(error)
  return detail?.tag === "InvalidRange"
    ? new InvalidRange({ message: detail.message })
    : new ServiceUnavailable({ message: detail?.message ?? `db is unreachable: ${error.rawMessage}` })
}

const remote = (pick: Effect.Effect<EffectClient<typeof DbService>, NoInstance>) => {
  const call = <A>(f: (client: EffectClient<typeof DbService>) => Effect.Effect<A, ConnectError>) =>
    pick.pipe(
      Effect.mapError((error) => new ServiceUnavailable({ message: error.message })),
      Effect.flatMap((client) => f(client).pipe(Effect.mapError(fromConnectError)))
    )
  const unavailableOnly = <A>(effect: Effect.Effect<A, InvalidRange | ServiceUnavailable>) =>
    Effect.mapError(effect, (error) => error._tag === "ServiceUnavailable" ? error : new ServiceUnavailable({ message: error.message }))
  return Db.of({
    existing: (keys) =>
      unavailableOnly(call((client) => client.existing({ keys: keys.map((key) => ({ userId: key.user_id, serverId: key.server_id })) }))).pipe(
        Effect.map((response) => response.entries.map(refFromProto))
      ),
    save: (messages, entries, replayed = []) =>
      unavailableOnly(call((client) =>
        client.save({ messages: messages.map(messageToProto), entries: entries.map(refToProto), replayed: replayed.map(refToProto) })
      )).pipe(
        Effect.map((response) => response.earlier.map(refFromProto))
      ),
    pull: (request) =>
      call((client) =>
        client.pull({
          userId: request.user,
          after: BigInt(request.after),
          ...(request.until === undefined ? {} : { until: BigInt(request.until) }),
          limit: request.limit
        })
      ).pipe(
        Effect.flatMap((response) =>
          Effect.forEach(response.entries, entryFromProto).pipe(
            Effect.map((entries) => ({ entries, through: Number(response.through), has_more: response.hasMore })),
            Effect.mapError((error) => new ServiceUnavailable({ message: error.rawMessage }))
          )
        )
      ),
    newest: (user) =>
      unavailableOnly(call((client) => client.newest({ userId: user }))).pipe(Effect.map((response) => Number(response.seq)))
  })
}

/** Db as a gRPC client of a db instance at `baseUrl`. */
export const layerGrpc = (baseUrl: string, options: { readonly timeoutMs?: number } = {}) =>
  Layer.effect(
    Db,
    Effect.map(makeClient(DbService, baseUrl, { timeoutMs: options.timeoutMs ?? 10_000 }), (client) => remote(Effect.succeed(client)))
  )

/** Db as a gRPC client of the healthy db instances in the registry, round-robin. */
export const layerRegistry = (options: { readonly timeoutMs?: number } = {}) =>
  Layer.effect(
    Db,
    Effect.map(discover("db", DbService, { timeoutMs: options.timeoutMs ?? 10_000 }), ({ pick }) => remote(pick))
  )
