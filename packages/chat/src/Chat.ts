import { SendRejected } from "@im/domain/Errors"
import { type GroupId, LocalId, type UserId } from "@im/domain/Ids"
import { ServerId } from "@im/domain/Ids"
import { busTopicOf, type ContentType, conversationKey, FANOUT_TOPIC, type Message, MESSAGES_TOPIC } from "@im/domain/Message"
import { MAX_NOTICE_RECIPIENTS, type NoticeRequest } from "@im/domain/Notice"
import { type BlockPair, FriendStore } from "@im/ports/FriendStore"
import { type BusRecord, MessageBus } from "@im/ports/MessageBus"
import { GroupStore } from "@im/ports/GroupStore"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import { UserStore } from "@im/ports/UserStore"
import { Pusher } from "@im/pusher/Pusher"
import { RecentMap } from "@im/ports/RecentMap"
import { Cause, Clock, Context, Effect, Exit, Layer, LogLevel, type Metric, Option, References, Request, RequestResolver, Tracer } from "effect"
import { hash } from "node:crypto"
import { FileMessages } from "./FileMessages.ts"
import * as Unavailable from "./Unavailable.ts"

/** A send waiting for the next batch (see `sendAll`), with its caller's span while tracing is on. */
interface Send extends Request.Request<SendAck, SendRejected> {
  readonly _tag: "Send"
  readonly request: SendRequest
  readonly parent: Tracer.AnySpan | undefined
  /** Checked by its caller already (see `send`): the batch only publishes it. */
  readonly checked: boolean
}
const Send = Request.tagged<Send>("Send")

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
  /**
   * Succeeds once the bus accepted the message. The sends made at the same time (by a gateway's
   * sockets, or in one SendBatch call) are checked and published together, each with its own
   * answer.
   */
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

      /** A store that failed while sends were checked: logged and counted once, each of those sends `unavailable`. */
      const unavailableBecause = (error: unknown) => Effect.flip(unavailable(error))

      /**
       * Why each target is refused (undefined: it is not), the targets checked together: one
       * target each, an existing receiver, no block by the receiver, a member's group. The
       * receivers not seen yet are looked up in one `existing` call (after a start every
       * receiver is new at once), and the one-to-one targets' blocks in one `blocking` call (the
       * FriendStore given is the cached one, CachedFriendStore: it answers from its cache and
       * loads only the receivers it misses, together). A store that fails refuses the targets
       * that needed it `unavailable`.
       */
      const refusals = Effect.fnUntraced(function*(targets: ReadonlyArray<TypingRequest>) {
        const refused: Array<SendRejected | undefined> = targets.map((target) =>
          (target.receiver_id === undefined) === (target.group_id === undefined)
            ? new SendRejected({ code: "invalid_frame", message: "set exactly one of receiver_id and group_id" })
            : undefined
        )
        const unseen = new Set<UserId>()
        targets.forEach((target, i) => {
          if (refused[i] === undefined && target.receiver_id !== undefined && !knownUsers.has(target.receiver_id)) {
            unseen.add(target.receiver_id)
          }
        })
        if (unseen.size > 0) {
          const found = yield* Effect.result(users.existing([...unseen]))
          const failed = found._tag === "Failure" ? yield* unavailableBecause(found.failure) : undefined
          if (found._tag === "Success") for (const user of found.success) knownUsers.add(user)
          targets.forEach((target, i) => {
            if (refused[i] !== undefined || target.receiver_id === undefined || !unseen.has(target.receiver_id)) return
            refused[i] = failed ?? (knownUsers.has(target.receiver_id)
              ? undefined
              : new SendRejected({ code: "receiver_not_found", message: `no user ${target.receiver_id}` }))
          })
        }
        const pairs: Array<BlockPair> = []
        const paired: Array<number> = []
        targets.forEach((target, i) => {
          if (refused[i] !== undefined || target.receiver_id === undefined) return
          pairs.push({ blocker: target.receiver_id, blocked: target.sender_id })
          paired.push(i)
        })
        if (pairs.length > 0) {
          const blocking = yield* Effect.result(friends.blocking(pairs))
          if (blocking._tag === "Failure") {
            const failed = yield* unavailableBecause(blocking.failure)
            for (const i of paired) refused[i] = failed
          } else if (blocking.success.length > 0) {
            const blocked = new Set(blocking.success.map(pairKey))
            paired.forEach((i, j) => {
              if (blocked.has(pairKey(pairs[j]!))) {
                refused[i] = new SendRejected({ code: "blocked", message: `${targets[i]!.receiver_id} does not accept your messages` })
              }
            })
          }
        }
        yield* Effect.forEach(targets, (target, i) =>
          refused[i] !== undefined || target.group_id === undefined
            ? Effect.void
            : Effect.result(groups.role(target.group_id, target.sender_id)).pipe(Effect.flatMap((role) =>
              role._tag === "Failure"
                ? Effect.map(unavailableBecause(role.failure), (failed) => void (refused[i] = failed))
                : Effect.sync(() => {
                  if (Option.isNone(role.success)) {
                    refused[i] = new SendRejected({ code: "not_group_member", message: `you are not a member of group ${target.group_id}` })
                  }
                })
            )), { concurrency: "unbounded", discard: true })
        return refused
      })

      /**
       * The sends made together (by the sockets of a gateway, or a SendBatch call), in one go,
       * each getting its outcome: a send whose (sender, local_id) was acknowledged recently gets
       * that ack again (a retry), one that comes twice in the batch is handled once, the others
       * not checked yet are checked together (`refusals`), and the accepted ones published
       * together (`publishAll`). A send whose caller left (the gateway's deadline) while the
       * checks ran is not published.
       */
      const sendAll = Effect.fnUntraced(function*(sends: ReadonlyArray<Send>) {
        const outcomes: Array<Exit.Exit<SendAck, SendRejected>> = new Array(sends.length)
        const keys = sends.map((send) => windowKeyOf(send.request))
        const firstOf = new Map<string, number>()
        const fresh: Array<number> = []
        const repeats: Array<number> = []
        sends.forEach((send, i) => {
          if (abandoned.has(send)) {
            outcomes[i] = Exit.interrupt()
            return
          }
          const key = keys[i]!
          const remembered = recentAcks.get(key)
          if (remembered !== undefined) outcomes[i] = Exit.succeed(remembered)
          else if (firstOf.has(key)) repeats.push(i)
          else {
            firstOf.set(key, i)
            fresh.push(i)
          }
        })
        const unchecked = fresh.filter((i) => !sends[i]!.checked)
        const refused = yield* refusals(unchecked.map((i) => sends[i]!.request))
        const refusalAt = new Map<number, SendRejected>()
        unchecked.forEach((i, j) => {
          if (refused[j] !== undefined) refusalAt.set(i, refused[j])
        })
        // A first send abandoned meanwhile is still published for a repeat of it still waiting.
        const wanted = new Set<number>()
        for (const i of repeats) if (!abandoned.has(sends[i]!)) wanted.add(firstOf.get(keys[i]!)!)
        const sendTime = yield* Clock.currentTimeMillis
        const accepted: Array<Accepted> = []
        for (const index of fresh) {
          const { parent, request } = sends[index]!
          const rejected = refusalAt.get(index)
          if (rejected !== undefined) outcomes[index] = Exit.fail(rejected)
          else if (abandoned.has(sends[index]!) && !wanted.has(index)) outcomes[index] = Exit.interrupt()
          else accepted.push({ index, parent, message: messageOf(request, sendTime) })
        }
        const unpublished = yield* publishAll(accepted)
        accepted.forEach(({ index, message }, j) => {
          const failed = unpublished[j]
          if (failed !== undefined) {
            outcomes[index] = Exit.fail(failed)
            return
          }
          const ack: SendAck = { server_id: message.server_id, send_time: message.send_time }
          recentAcks.set(keys[index]!, ack)
          outcomes[index] = Exit.succeed(ack)
        })
        for (const i of repeats) outcomes[i] = outcomes[firstOf.get(keys[i]!)!]!
        // A send whose caller left is not counted, as an interrupted send was not.
        yield* countOutcomes(sends, outcomes, (send) => !abandoned.has(send))
        return outcomes
      })

      /**
       * Publishes the accepted messages, each keyed by its conversation (whose messages keep
       * their order), and says for each why it was not published (undefined: it was). With
       * tracing off, each topic's records go in one publish. With it on, each message has its
       * own `Chat.publish` span, a child of its send's, whose trace context its record carries
       * for the consumer's span.
       */
      const publishAll = (accepted: ReadonlyArray<Accepted>): Effect.Effect<Array<SendRejected | undefined>> =>
        Effect.withFiber((fiber) => {
          if (fiber.getRef(References.TracerEnabled)) {
            return Effect.forEach(accepted, ({ message, parent }) =>
              publish(message).pipe(
                // A defect of one publish fails its own message, not the others'.
                Effect.catchDefect(unavailable),
                TraceContext.span("Chat.publish", { kind: "producer", ...(parent === undefined ? {} : { parent }) }),
                Effect.match({ onFailure: (rejected) => rejected, onSuccess: () => undefined })
              ), { concurrency: "unbounded" })
          }
          const unpublished = new Array<SendRejected | undefined>(accepted.length).fill(undefined)
          const byTopic = new Map<string, { readonly at: Array<number>; readonly records: Array<BusRecord> }>()
          accepted.forEach(({ message }, j) => {
            const { key, topic } = placeOf(message)
            let batch = byTopic.get(topic)
            if (batch === undefined) byTopic.set(topic, batch = { at: [], records: [] })
            batch.at.push(j)
            batch.records.push({ key, value: JSON.stringify(message) })
          })
          return Effect.flatMap(LogLevel.isEnabled("Debug"), (debug) =>
            Effect.forEach(byTopic, ([topic, { at, records }]) =>
              bus.publish(topic, records).pipe(
                Effect.andThen(Metrics.increment(published.get(topic)!, records.length)),
                Effect.andThen(debug ? Effect.forEach(at, (j) => logPublished(accepted[j]!.message), { discard: true }) : Effect.void),
                // A failure (or a defect) of one topic's publish fails that topic's messages only.
                Effect.catchCause((cause) =>
                  Effect.map(unavailableBecause(Cause.squash(cause)), (failed) => {
                    for (const j of at) unpublished[j] = failed
                  })
                )
              ), { concurrency: "unbounded", discard: true })).pipe(Effect.as(unpublished))
        })

      /** One message on the bus, with the current span's trace context: a traced send's, or a notice's. */
      const publish = Effect.fnUntraced(function*(message: Message) {
        yield* Effect.annotateCurrentSpan("server_id", message.server_id)
        const headers = yield* TraceContext.currentHeaders
        const { key, topic } = placeOf(message)
        yield* bus.publish(topic, [{ key, value: JSON.stringify(message), headers }]).pipe(Effect.catchTag("PortError", unavailable))
        yield* Metrics.increment(published.get(topic)!)
        yield* logPublished(message)
      })

      const publishTraced = (message: Message) => publish(message).pipe(TraceContext.span("Chat.publish", { kind: "producer" }))

      // A batch runs in a fiber of its own, with the context of the send that opened it: its
      // logs are chat's, not that send's socket's, and its span (with tracing on) is a root
      // linked to each send's, as a consumer's batch is.
      // The sends checked by their callers go in batches of their own: they do not wait for the
      // one-to-one sends' lookups, nor fail with them.
      const sendResolver = RequestResolver.makeWith<Send>({
        batchKey: (entry) => entry.request.checked,
        delay: Effect.yieldNow,
        collectWhile: () => true,
        runAll: (entries) => {
          const sends = entries.map((entry) => entry.request)
          const links = sends.flatMap(({ parent }) => parent === undefined ? [] : [{ span: parent, attributes: {} }])
          return sendAll(sends).pipe(
            Effect.map((outcomes) => entries.forEach((entry, i) => entry.completeUnsafe(outcomes[i]!))),
            TraceContext.span("Chat.sendAll", { root: true, links: links.slice(0, TraceContext.MAX_LINKS), attributes: { sends: sends.length } }),
            Effect.provideService(References.CurrentLogAnnotations, { service: "chat", sends: sends.length })
          )
        }
      })

      /** Sends whose callers left while their batch ran: not published if it has not come to that yet. */
      const abandoned = new WeakSet<Send>()

      /**
       * A one-to-one text message (nearly every message) is checked in its batch. A group's
       * message (its members' lookup) and a file's (the file's record and object) are checked by
       * their caller first, each alone, so that a slow or failing check holds up only its own
       * send and a send interrupted meanwhile goes no further; their batch only publishes them.
       */
      const checkAlone = Effect.fnUntraced(function*(request: SendRequest) {
        const [refused] = yield* refusals([request])
        if (refused !== undefined) return yield* refused
        yield* fileMessages.admit(request)
      })

      // The sends made together go in one batch (`sendAll`); each keeps its own span and timing.
      const send = (request: SendRequest): Effect.Effect<SendAck, SendRejected> => {
        const checked = request.group_id !== undefined || request.content_type !== "text"
        const batched = Effect.withFiber((fiber) => {
          const parent = fiber.getRef(References.TracerEnabled) ? Context.getOrUndefined(fiber.context, Tracer.ParentSpan) : undefined
          const pending = Send({ request, parent, checked })
          return Effect.request(pending, sendResolver).pipe(Effect.onInterrupt(() => Effect.sync(() => abandoned.add(pending))))
        })
        return (checked
          ? Effect.suspend(() => {
            // A retry of a send acknowledged recently gets that ack, not checked again (a sender
            // who has left the group since too), as a one-to-one send's batch answers it.
            const remembered = recentAcks.get(windowKeyOf(request))
            if (remembered !== undefined) return Effect.as(Metrics.increment(Metrics.chatAccepted({ kind: sendKind(request) })), remembered)
            // Counted here; the batch counts the outcomes of the sends it checks.
            return Effect.andThen(
              Effect.tapError(checkAlone(request), (rejected) => Metrics.increment(Metrics.chatRejected({ code: rejected.code }))),
              batched
            )
          })
          : batched).pipe(Metrics.timed(Metrics.chatSendDuration), TraceContext.span("Chat.send"))
      }

      const notify = Effect.fn("Chat.notify")(function*(notice: NoticeRequest) {
        const to = [...new Set(notice.to)]
        if (to.length === 0 || to.length > MAX_NOTICE_RECIPIENTS) {
          return yield* new SendRejected({ code: "invalid_frame", message: `a notice goes to 1 to ${MAX_NOTICE_RECIPIENTS} users` })
        }
        const localId = LocalId.make(`n:${notice.event_id}`)
        const ack: SendAck = { server_id: serverIdOf(notice.sender_id, localId), send_time: yield* Clock.currentTimeMillis }
        yield* publishTraced({
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
        const [refused] = yield* refusals([request])
        if (refused !== undefined) return yield* refused
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

const logPublished = (message: Message) => Effect.logDebug("published", { server_id: message.server_id, kind: message.kind })

const windowKeyOf = (request: SendRequest) => `${request.sender_id}\n${request.local_id}`

const pairKey = (pair: BlockPair) => `${pair.blocker}\n${pair.blocked}`

/** Where a message goes on the bus: keyed by its conversation, on that conversation's topic. */
const placeOf = (message: Message) => {
  const key = conversationKey(message)
  return { key, topic: busTopicOf(key) }
}

/** A send of a batch that passed every check, and its message. */
interface Accepted {
  /** Its place in the batch. */
  readonly index: number
  readonly message: Message
  readonly parent: Tracer.AnySpan | undefined
}

/** The message of a send accepted at `sendTime`. */
const messageOf = (request: SendRequest, sendTime: number): Message => ({
  server_id: serverIdOf(request.sender_id, request.local_id),
  local_id: request.local_id,
  sender_id: request.sender_id,
  ...(request.group_id !== undefined
    ? { kind: "group" as const, group_id: request.group_id }
    : { kind: "single" as const, receiver_id: request.receiver_id! }),
  content_type: request.content_type,
  content: request.content,
  create_time: request.create_time,
  send_time: sendTime
})

/** Counts a batch's outcomes as `countOutcome` counts one call's. */
const countOutcomes = (
  sends: ReadonlyArray<Send>,
  outcomes: ReadonlyArray<Exit.Exit<SendAck, SendRejected>>,
  counted: (send: Send) => boolean
) =>
  Effect.withFiber((fiber) => {
    const counts = new Map<Metric.Metric<number, unknown>, number>()
    outcomes.forEach((outcome, i) => {
      if (!counted(sends[i]!)) return
      const rejected = Exit.isSuccess(outcome) ? undefined : Exit.findErrorOption(outcome)
      const metric = rejected === undefined
        ? Metrics.chatAccepted({ kind: sendKind(sends[i]!.request) })
        : Option.isSome(rejected) ? Metrics.chatRejected({ code: rejected.value.code }) : undefined
      if (metric !== undefined) counts.set(metric, (counts.get(metric) ?? 0) + 1)
    })
    for (const [metric, count] of counts) metric.updateUnsafe(count, fiber.context)
    return Effect.void
  })

/** Counts an accepted message by kind (`im_chat_accepted_total`), a refusal by its code. */
const countOutcome = <Args extends ReadonlyArray<any>>(kindOf: (...args: Args) => string) =>
  <A, R>(effect: Effect.Effect<A, SendRejected, R>, ...args: Args): Effect.Effect<A, SendRejected, R> =>
    Effect.onExit(effect, (exit) => {
      if (Exit.isSuccess(exit)) return Metrics.increment(Metrics.chatAccepted({ kind: kindOf(...args) }))
      const rejected = Exit.findErrorOption(exit)
      return Option.isSome(rejected) ? Metrics.increment(Metrics.chatRejected({ code: rejected.value.code })) : Effect.void
    })
