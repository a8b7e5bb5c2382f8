import { SendRejected } from "@im/domain/Errors"
import { type GroupId, LocalId, type UserId } from "@im/domain/Ids"
import { ServerId } from "@im/domain/Ids"
import { busTopicOf, type ContentType, conversationKey, FANOUT_TOPIC, type Message, MESSAGES_TOPIC } from "@im/domain/Message"
import { MAX_NOTICE_RECIPIENTS, type NoticeRequest } from "@im/domain/Notice"
import { type BlockPair, FriendStore } from "@im/ports/FriendStore"
import type { PortError } from "@im/ports/PortError"
import { MessageBus } from "@im/ports/MessageBus"
import { GroupStore } from "@im/ports/GroupStore"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import { UserStore } from "@im/ports/UserStore"
import { Pusher } from "@im/pusher/Pusher"
import { RecentMap } from "@im/ports/RecentMap"
import { Clock, Context, Effect, Exit, Layer, Option, Request, RequestResolver } from "effect"
import { hash } from "node:crypto"
import { FileMessages } from "./FileMessages.ts"
import * as Unavailable from "./Unavailable.ts"

interface IsBlocked extends Request.Request<boolean, PortError>, BlockPair {
  readonly _tag: "IsBlocked"
}
const IsBlocked = Request.tagged<IsBlocked>("IsBlocked")

interface UserExists extends Request.Request<boolean, PortError> {
  readonly _tag: "UserExists"
  readonly user: UserId
}
const UserExists = Request.tagged<UserExists>("UserExists")

/**
 * A resolver that answers the requests made together with one `load` of them all, each request
 * getting `answer` of the result (or the load's failure).
 */
const batched = <Req extends Request.Request<any, PortError>, B>(
  load: (requests: ReadonlyArray<Req>) => Effect.Effect<B, Request.Error<Req>>,
  answer: (loaded: B, request: Req) => Request.Success<Req>
) =>
  RequestResolver.make<Req>((entries) =>
    Effect.map(Effect.exit(load(entries.map((entry) => entry.request))), (loaded) => {
      for (const entry of entries) entry.completeUnsafe(Exit.map(loaded, (value) => answer(value, entry.request)))
    })
  )

export interface SendRequest {
  /** The authenticated sender: set by the gateway, never by the client. */
  readonly sender_id: UserId
  readonly local_id: LocalId
  readonly receiver_id?: UserId | undefined
  readonly group_id?: GroupId | undefined
  readonly content_type: ContentType
  readonly content: string
  readonly create_time: number
}

export interface TypingRequest {
  /** The authenticated user. */
  readonly sender_id: UserId
  readonly receiver_id?: UserId | undefined
  readonly group_id?: GroupId | undefined
}

export interface SendAck {
  readonly server_id: ServerId
  readonly send_time: number
}

/**
 * The server's id of a message is a function of (sender, local_id), so a retried send gets the
 * same id from any chat instance, at any time, and the stores keep it once.
 */
export const serverIdOf = (sender: UserId, localId: LocalId): ServerId =>
  ServerId.make(`m_${hash("sha256", `${sender}\n${localId}`, "base64url").slice(0, 27)}`)

/** How many recent acks are remembered, so that a retry within the window gets the same send_time. */
const ACK_WINDOW = 100_000

/**
 * The chat service: gives each message its server_id and send_time and publishes it to the bus,
 * keyed by conversation so that one conversation's messages keep their order (one-to-one chats
 * and group fan-outs on topics of their own: busTopicOf). Only a group's
 * members may send to it, and nobody to a user who blocked them.
 */
export class Chat extends Context.Service<Chat, {
  /** Succeeds once the bus accepted the message. */
  readonly send: (request: SendRequest) => Effect.Effect<SendAck, SendRejected>
  /**
   * Passes "typing" on to the receiver, or to the group's other members, where they are
   * connected; nothing is stored. The same checks as a send: the receiver exists, the sender is
   * in the group.
   */
  readonly typing: (request: TypingRequest) => Effect.Effect<void, SendRejected>
  /** Publishes a notice (see Notice.ts); succeeds once the bus accepted it. */
  readonly notify: (notice: NoticeRequest) => Effect.Effect<SendAck, SendRejected>
}>()("@im/chat/Chat") {
  static readonly layer = Layer.effect(
    Chat,
    Effect.gen(function*() {
      const bus = yield* MessageBus
      const users = yield* UserStore
      const groups = yield* GroupStore
      const friends = yield* FriendStore
      const fileMessages = yield* FileMessages
      const pusher = yield* Pusher
      const published = new Map([MESSAGES_TOPIC, FANOUT_TOPIC].map((topic) => [topic, Metrics.busPublished({ topic })]))
      const recentAcks = new RecentMap<string, SendAck>(ACK_WINDOW)
      // Users are never deleted (yet), so a receiver seen once stays valid.
      const knownUsers = new Set<UserId>()

      // Every one-to-one send asks whether its receiver blocked its sender: the sends in flight
      // together are asked in one `blocking` call. The FriendStore given is the cached one
      // (CachedFriendStore): it answers from the block cache and loads only the receivers it
      // misses, together.
      const blockedResolver = batched(
        (requests: ReadonlyArray<IsBlocked>) => friends.blocking(requests),
        (pairs, request) => pairs.some((pair) => pair.blocker === request.blocker && pair.blocked === request.blocked)
      )

      // A receiver not seen yet is looked up with the others of the sends in flight together, in
      // one `existing` call: after a start every receiver is new at once.
      const existsResolver = batched(
        (requests: ReadonlyArray<UserExists>) => users.existing([...new Set(requests.map((request) => request.user))]),
        (existing, request) => existing.has(request.user)
      )

      const receiverExists = Effect.fnUntraced(function*(receiver: UserId) {
        if (knownUsers.has(receiver)) return true
        const found = yield* Effect.request(UserExists({ user: receiver }), existsResolver).pipe(Effect.catchTag("PortError", unavailable))
        if (found) knownUsers.add(receiver)
        return found
      })

      /** The checks every send and typing signal passes: one target, an existing receiver, a member's group. */
      const checkTarget = Effect.fnUntraced(function*(request: TypingRequest) {
        if ((request.receiver_id === undefined) === (request.group_id === undefined)) {
          return yield* new SendRejected({ code: "invalid_frame", message: "set exactly one of receiver_id and group_id" })
        }
        if (request.receiver_id !== undefined && !(yield* receiverExists(request.receiver_id))) {
          return yield* new SendRejected({ code: "receiver_not_found", message: `no user ${request.receiver_id}` })
        }
        if (
          request.receiver_id !== undefined &&
          (yield* Effect.request(IsBlocked({ blocker: request.receiver_id, blocked: request.sender_id }), blockedResolver).pipe(
            Effect.catchTag("PortError", unavailable)
          ))
        ) {
          return yield* new SendRejected({ code: "blocked", message: `${request.receiver_id} does not accept your messages` })
        }
        if (request.group_id !== undefined) {
          const role = yield* groups.role(request.group_id, request.sender_id).pipe(Effect.catchTag("PortError", unavailable))
          if (Option.isNone(role)) {
            return yield* new SendRejected({ code: "not_group_member", message: `you are not a member of group ${request.group_id}` })
          }
        }
      })

      const send = Effect.fnUntraced(function*(request: SendRequest) {
        const windowKey = `${request.sender_id}\n${request.local_id}`
        const remembered = recentAcks.get(windowKey)
        if (remembered !== undefined) return remembered
        yield* checkTarget(request)
        yield* fileMessages.admit(request)
        const ack: SendAck = {
          server_id: serverIdOf(request.sender_id, request.local_id),
          send_time: yield* Clock.currentTimeMillis
        }
        const message: Message = {
          server_id: ack.server_id,
          local_id: request.local_id,
          sender_id: request.sender_id,
          ...(request.group_id !== undefined
            ? { kind: "group" as const, group_id: request.group_id }
            : { kind: "single" as const, receiver_id: request.receiver_id! }),
          content_type: request.content_type,
          content: request.content,
          create_time: request.create_time,
          send_time: ack.send_time
        }
        yield* publish(message)
        recentAcks.set(windowKey, ack)
        return ack
      }, countOutcome(sendKind), Metrics.timed(Metrics.chatSendDuration), TraceContext.span("Chat.send"))

      // The record carries this span's trace context: the consumer's span continues the trace.
      const publish = Effect.fnUntraced(function*(message: Message) {
        yield* Effect.annotateCurrentSpan("server_id", message.server_id)
        const headers = yield* TraceContext.currentHeaders
        const key = conversationKey(message)
        const topic = busTopicOf(key)
        yield* bus.publish(topic, [{ key, value: JSON.stringify(message), headers }]).pipe(Effect.catchTag("PortError", unavailable))
        yield* Metrics.increment(published.get(topic)!)
        yield* Effect.logDebug("published", { server_id: message.server_id, kind: message.kind })
      }, TraceContext.span("Chat.publish", { kind: "producer" }))

      const notify = Effect.fn("Chat.notify")(function*(notice: NoticeRequest) {
        const to = [...new Set(notice.to)]
        if (to.length === 0 || to.length > MAX_NOTICE_RECIPIENTS) {
          return yield* new SendRejected({ code: "invalid_frame", message: `a notice goes to 1 to ${MAX_NOTICE_RECIPIENTS} users` })
        }
        const localId = LocalId.make(`n:${notice.event_id}`)
        const ack: SendAck = { server_id: serverIdOf(notice.sender_id, localId), send_time: yield* Clock.currentTimeMillis }
        yield* publish({
          server_id: ack.server_id,
          local_id: localId,
          sender_id: notice.sender_id,
          kind: "notice",
          ...(notice.group_id === undefined ? {} : { group_id: notice.group_id }),
          to,
          content_type: "notice",
          content: JSON.stringify(notice.event),
          create_time: ack.send_time,
          send_time: ack.send_time
        })
        return ack
      }, countOutcome(() => "notice"))

      const typing = Effect.fn("Chat.typing")(function*(request: TypingRequest) {
        yield* checkTarget(request)
        const to = request.group_id !== undefined
          ? (yield* groups.members(request.group_id).pipe(Effect.catchTag("PortError", unavailable)))
            .map((member) => member.user_id)
            .filter((user) => user !== request.sender_id)
          : [request.receiver_id!]
        const frame = JSON.stringify({
          type: "typing",
          sender_id: request.sender_id,
          ...(request.group_id === undefined ? { receiver_id: request.receiver_id } : { group_id: request.group_id })
        })
        yield* pusher.signal(to, frame)
      })

      return Chat.of({ send, typing, notify })
    }).pipe(Effect.annotateLogs({ service: "chat" }))
  )
}

const unavailable = Unavailable.unavailable("chat could not reach a dependency", "the server could not accept the message now; retry")

const sendKind = (request: SendRequest) => request.group_id !== undefined ? "group" : "single"

/** Counts an accepted message by kind (`im_chat_accepted_total`), a refusal by its code. */
const countOutcome = <Args extends ReadonlyArray<any>>(kindOf: (...args: Args) => string) =>
  <A, R>(effect: Effect.Effect<A, SendRejected, R>, ...args: Args): Effect.Effect<A, SendRejected, R> =>
    Effect.onExit(effect, (exit) => {
      if (Exit.isSuccess(exit)) return Metrics.increment(Metrics.chatAccepted({ kind: kindOf(...args) }))
      const rejected = Exit.findErrorOption(exit)
      return Option.isSome(rejected) ? Metrics.increment(Metrics.chatRejected({ code: rejected.value.code })) : Effect.void
    })
