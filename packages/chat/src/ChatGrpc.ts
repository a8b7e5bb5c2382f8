import * as Settings from "@im/ports/Settings"
import { SendRejected } from "@im/domain/Errors"
import { SendErrorCode } from "@im/domain/Frames"
import { GroupId, LocalId, ServerId, UserId } from "@im/domain/Ids"
import { Content, ContentType, Millis } from "@im/domain/Message"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import { discover, type NoInstance } from "@im/proto/Discovery"
import { type EffectClient, type GrpcRoutes, implement, makeClient } from "@im/proto/Grpc"
import { Code, ConnectError, errorDetailOf, toConnectError } from "@im/proto/Errors"
import {
  ChatService,
  type NotifyRequest,
  type SendBatchRequest,
  type SendRequest as SendRequestPb,
  type SendResult,
  type TypingRequest as TypingRequestPb
} from "@im/proto/gen/im/chat/v1/chat_pb"
import { MAX_NOTICE_RECIPIENTS, NoticeEventType, type NoticeRequest } from "@im/domain/Notice"
import { Duration, Effect, Exit, Layer, Option, Request, RequestResolver, Schema } from "effect"
import { Chat, type SendAck, type SendRequest, type TypingRequest } from "./Chat.ts"

/** Most sends in one SendBatch call (chat.proto). */
export const MAX_SEND_BATCH = 1_000

/** Proto → domain: proto3 has no "unset" for strings, so empty means absent. */
const DomainRequest = Schema.Struct({
  sender_id: UserId,
  local_id: LocalId,
  receiver_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId),
  content_type: ContentType,
  content: Content,
  create_time: Millis
})
const decodeRequest = Schema.decodeUnknownEffect(DomainRequest)

const fromProto = (request: SendRequestPb) =>
  decodeRequest({
    sender_id: request.senderId,
    local_id: request.localId,
    ...(request.receiverId === "" ? {} : { receiver_id: request.receiverId }),
    ...(request.groupId === "" ? {} : { group_id: request.groupId }),
    content_type: request.contentType,
    content: request.content,
    create_time: Number(request.createTime)
  }).pipe(Effect.mapError((error) => new SendRejected({ code: "invalid_frame", message: error.message })))

const DomainTyping = Schema.Struct({
  sender_id: UserId,
  receiver_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId)
})
const decodeTyping = Schema.decodeUnknownEffect(DomainTyping)

const typingFromProto = (request: TypingRequestPb) =>
  decodeTyping({
    sender_id: request.senderId,
    ...(request.receiverId === "" ? {} : { receiver_id: request.receiverId }),
    ...(request.groupId === "" ? {} : { group_id: request.groupId })
  }).pipe(Effect.mapError((error) => new SendRejected({ code: "invalid_frame", message: error.message })))

const DomainNotice = Schema.Struct({
  sender_id: UserId,
  to: Schema.Array(UserId).pipe(Schema.check(Schema.isMinLength(1), Schema.isMaxLength(MAX_NOTICE_RECIPIENTS))),
  group_id: Schema.optionalKey(GroupId),
  event_id: Schema.String.pipe(Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(60))),
  event: Schema.fromJsonString(Schema.StructWithRest(Schema.Struct({ type: NoticeEventType }), [Schema.Record(Schema.String, Schema.Unknown)]))
})
const decodeNotice = Schema.decodeUnknownEffect(DomainNotice)

const noticeFromProto = (request: NotifyRequest) =>
  decodeNotice({
    sender_id: request.senderId,
    to: request.to,
    ...(request.groupId === "" ? {} : { group_id: request.groupId }),
    event_id: request.eventId,
    event: request.eventJson
  }).pipe(Effect.mapError((error) => new SendRejected({ code: "invalid_frame", message: error.message })))

const statusOf: Record<SendRejected["code"], Code> = {
  invalid_frame: Code.InvalidArgument,
  forbidden_sender: Code.PermissionDenied,
  receiver_not_found: Code.NotFound,
  not_group_member: Code.PermissionDenied,
  blocked: Code.PermissionDenied,
  invalid_file: Code.InvalidArgument,
  unsupported: Code.Unimplemented,
  unavailable: Code.Unavailable
}

const ackToProto = (ack: SendAck) => ({ serverId: ack.server_id, sendTime: BigInt(ack.send_time) })

const unavailable = () => new SendRejected({ code: "unavailable", message: "the server could not accept the message now; retry" })

const resultToProto = (result: Exit.Exit<SendAck, SendRejected>): Omit<SendResult, "$typeName"> => {
  if (Exit.isSuccess(result)) {
    return { outcome: { case: "accepted", value: { $typeName: "im.chat.v1.SendResponse", ...ackToProto(result.value) } } }
  }
  const rejected = Option.getOrElse(Exit.findErrorOption(result), unavailable)
  return {
    outcome: {
      case: "rejected",
      value: { $typeName: "im.message.v1.ErrorDetail", tag: rejected._tag, code: rejected.code, message: rejected.message }
    }
  }
}

/** The chat service's gRPC server: `im.chat.v1.ChatService` over the local Chat. */
export const ChatGrpcServer: Layer.Layer<never, never, GrpcRoutes | Chat> = implement(
  ChatService,
  Effect.gen(function*() {
    const chat = yield* Chat
    return {
      send: (request: SendRequestPb) =>
        fromProto(request).pipe(
          Effect.flatMap((decoded) => chat.send(decoded as SendRequest)),
          Effect.map(ackToProto)
        ),
      // The sends of a batch come from different sockets (a socket's sends come one after the
      // other), so they run concurrently, as separate Send calls would; made together, chat
      // takes them in one batch (`sendAll` in Chat.ts).
      // Each send continues its own trace (its traceparent), linked to the batch's call.
      sendBatch: (request: SendBatchRequest) =>
        request.sends.length === 0 || request.sends.length > MAX_SEND_BATCH
          ? Effect.fail(new SendRejected({ code: "invalid_frame", message: `a batch holds 1 to ${MAX_SEND_BATCH} sends` }))
          : Effect.flatMap(TraceContext.currentSpan, (call) =>
            Effect.forEach(
              request.sends,
              (send) => {
                const parent = TraceContext.parentFrom({ [TraceContext.TRACEPARENT]: send.traceparent })
                return fromProto(send).pipe(
                  Effect.flatMap((decoded) => chat.send(decoded as SendRequest)),
                  Effect.tapDefect((defect) => Effect.logError("a send of a batch failed", defect)),
                  TraceContext.span("ChatGrpc.send", {
                    kind: "server",
                    ...(parent === undefined ? { root: true } : { parent }),
                    links: Option.isSome(call) ? [{ span: call.value, attributes: {} }] : []
                  }),
                  Effect.exit
                )
              },
              { concurrency: "unbounded" }
            )
          ).pipe(Effect.map((results) => ({ results: results.map(resultToProto) }))),
      typing: (request: TypingRequestPb) =>
        typingFromProto(request).pipe(
          Effect.flatMap((decoded) => chat.typing(decoded as TypingRequest)),
          Effect.as({})
        ),
      notify: (request: NotifyRequest) =>
        noticeFromProto(request).pipe(
          Effect.flatMap((notice) => chat.notify(notice as NoticeRequest)),
          Effect.map((ack) => ({ serverId: ack.server_id, sendTime: BigInt(ack.send_time) }))
        )
    }
  }),
  { toConnectError: (error: SendRejected) => toConnectError(statusOf[error.code], { tag: error._tag, code: error.code, message: error.message }) }
)

const isSendErrorCode = Schema.is(SendErrorCode)

/**
 * The call did not reach chat, or chat's answer did not come back: no instance, a refused or
 * broken connection, no answer in time. (A chat that answered, with a refusal or a failure of its
 * own, was reached; chat counts its own failures.)
 */
const isUnreachable = (error: ConnectError | NoInstance) =>
  !(error instanceof ConnectError) ||
  ((error.code === Code.Unavailable || error.code === Code.DeadlineExceeded) && errorDetailOf(error) === undefined)

const rejectedFrom = (error: ConnectError | NoInstance) => {
  if (!(error instanceof ConnectError)) return new SendRejected({ code: "unavailable", message: error.message })
  const detail = errorDetailOf(error)
  return detail !== undefined && detail.tag === "SendRejected" && isSendErrorCode(detail.code)
    ? new SendRejected({ code: detail.code, message: detail.message })
    : new SendRejected({ code: "unavailable", message: `chat is unreachable: ${error.rawMessage}` })
}

const ackFrom = (response: { readonly serverId: string; readonly sendTime: bigint }) => ({
  server_id: ServerId.make(response.serverId),
  send_time: Number(response.sendTime)
})

const sendToProto = (request: SendRequest, traceparent: string | undefined) => ({
  senderId: request.sender_id,
  localId: request.local_id,
  receiverId: request.receiver_id ?? "",
  groupId: request.group_id ?? "",
  contentType: request.content_type,
  content: request.content,
  createTime: BigInt(request.create_time),
  traceparent: traceparent ?? ""
})

const resultFrom = (result: SendResult | undefined): Exit.Exit<SendAck, SendRejected> => {
  switch (result?.outcome.case) {
    case "accepted":
      return Exit.succeed(ackFrom(result.outcome.value))
    case "rejected": {
      const { code, message } = result.outcome.value
      return Exit.fail(isSendErrorCode(code) ? new SendRejected({ code, message }) : unavailable())
    }
    default:
      return Exit.fail(new SendRejected({ code: "unavailable", message: "chat answered no result for the send" }))
  }
}

interface SendCall extends Request.Request<SendAck, SendRejected> {
  readonly _tag: "SendCall"
  readonly request: SendRequest
  readonly traceparent: string | undefined
}
const SendCall = Request.tagged<SendCall>("SendCall")

/** How long the gateway's sends wait for others to share their SendBatch call (CHAT_SEND_LINGER). */
export const DEFAULT_SEND_LINGER = Duration.millis(5)

const remote = (client: Effect.Effect<EffectClient<typeof ChatService>, NoInstance>, sendLinger: Duration.Input | undefined) => {
  // The sends made together (by the sockets of a gateway) go in one SendBatch call; with a
  // linger, so do the sends made within it of the first, which at a few thousand sends a second
  // (each socket's frame arriving on its own) turns a call per send into a call per linger.
  const batched = RequestResolver.make<SendCall>((entries) =>
    client.pipe(
      Effect.flatMap((client) => client.sendBatch({ sends: entries.map(({ request }) => sendToProto(request.request, request.traceparent)) })),
      // Its sends are answered unavailable, and sent again by their clients: an operator sees it here.
      Effect.tapError((error) =>
        isUnreachable(error)
          ? Effect.andThen(
            Effect.logWarning("chat is unreachable; its sends are answered unavailable", { sends: entries.length, cause: error.message }),
            Metrics.error("ws", "chat_unreachable")
          )
          : Effect.void
      ),
      Effect.mapError(rejectedFrom),
      Effect.exit,
      Effect.map((exit) => {
        // An answer that does not have one result per send cannot be matched up: none is trusted.
        const mismatch = Exit.isSuccess(exit) && exit.value.results.length !== entries.length
        for (const [i, entry] of entries.entries()) {
          entry.completeUnsafe(
            Exit.isFailure(exit)
              ? Exit.failCause(exit.cause)
              : mismatch
              ? Exit.fail(new SendRejected({ code: "unavailable", message: "chat answered a batch with the wrong number of results" }))
              : resultFrom(exit.value.results[i])
          )
        }
      })
    )
  ).pipe(RequestResolver.batchN(MAX_SEND_BATCH))
  const sends = sendLinger === undefined || Duration.isZero(Duration.fromInputUnsafe(sendLinger))
    ? batched
    : RequestResolver.setDelay(batched, sendLinger)
  return Chat.of({
    typing: (request) =>
      client.pipe(
        Effect.flatMap((client) =>
          client.typing({ senderId: request.sender_id, receiverId: request.receiver_id ?? "", groupId: request.group_id ?? "" })
        ),
        Effect.asVoid,
        Effect.mapError(rejectedFrom)
      ),
    notify: (notice) =>
      client.pipe(
        Effect.flatMap((client) =>
          client.notify({
            senderId: notice.sender_id,
            to: [...notice.to],
            groupId: notice.group_id ?? "",
            eventId: notice.event_id,
            eventJson: JSON.stringify(notice.event)
          })
        ),
        Effect.map(ackFrom),
        Effect.mapError(rejectedFrom)
      ),
    send: (request) =>
      TraceContext.currentHeaders.pipe(
        Effect.flatMap((headers) => Effect.request(SendCall({ request, traceparent: headers[TraceContext.TRACEPARENT] }), sends)),
        TraceContext.span("ChatGrpc.send", { kind: "client" })
      )
  })
}

/**
 * Chat as a gRPC client of the chat instance at `baseUrl`. A refusal comes back as the same
 * SendRejected; a transport failure is `unavailable`.
 */
export const layerGrpc = (baseUrl: string, options: ClientOptions = {}) =>
  Layer.effect(
    Chat,
    Effect.map(
      makeClient(ChatService, baseUrl, { timeoutMs: options.timeoutMs ?? 5_000 }),
      (client) => remote(Effect.succeed(client), options.sendLinger)
    )
  )

/**
 * Chat as a gRPC client of the healthy chat instances in the registry, round-robin: the ws
 * gateway's in the cluster. Its sends linger `options.sendLinger`, else CHAT_SEND_LINGER (5 ms).
 */
export const layerRegistry = (options: ClientOptions = {}) =>
  Layer.effect(
    Chat,
    Effect.gen(function*() {
      const sendLinger = options.sendLinger ??
        (yield* Settings.durationOrZero("CHAT_SEND_LINGER", DEFAULT_SEND_LINGER))
      const { pick } = yield* discover("chat", ChatService, { timeoutMs: options.timeoutMs ?? 5_000 })
      return remote(pick, sendLinger)
    })
  )

export interface ClientOptions {
  readonly timeoutMs?: number
  /** How long a send waits for others to go in the same SendBatch call; none by default in layerGrpc. */
  readonly sendLinger?: Duration.Input
}
