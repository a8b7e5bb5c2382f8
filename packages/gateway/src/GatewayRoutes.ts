import { Sessions } from "@im/auth/Sessions"
import { Chat } from "@im/chat/Chat"
import { ClientFrame, CloseCodes, type SendFrame, type TypingFrame } from "@im/domain/Frames"
import type { SessionId, UserId } from "@im/domain/Ids"
import * as Metrics from "@im/observability/Metrics"
import { Clock, Context, Duration, Effect, Exit, Option, Schema, Scope, type Tracer } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Socket from "effect/socket/Socket"
import { randomUUID } from "node:crypto"
import { Gateway } from "./Gateway.ts"
import { SocketSession } from "./SocketSession.ts"

const decodeFrame = Schema.decodeUnknownExit(ClientFrame)

const TYPING_INTERVAL_MS = 1_000

const framesReceived = {
  send: Metrics.gatewayFramesReceived({ type: "send" }),
  typing: Metrics.gatewayFramesReceived({ type: "typing" }),
  ping: Metrics.gatewayFramesReceived({ type: "ping" }),
  invalid: Metrics.gatewayFramesReceived({ type: "invalid" })
}

/** The token from `?token=` (browsers cannot set headers on a WebSocket) or `Authorization: Bearer`. */
const tokenOf = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const query = new URL(request.url, "http://localhost").searchParams.get("token")
  if (query !== null) return query
  const header = request.headers["authorization"]
  return header?.startsWith("Bearer ") ? header.slice("Bearer ".length).trim() : undefined
}

const errorFrame = (message: string) => JSON.stringify({ type: "error", code: "invalid_frame", message })

const sendFailed = (localId: string, code: string, message: string) =>
  JSON.stringify({ type: "send_result", ok: false, local_id: localId, error: { code, message } })

/** The `local_id` of something that looks like a send frame, so a bad send still gets its result. */
const localIdOf = (json: unknown): string | undefined => {
  if (typeof json !== "object" || json === null) return undefined
  const { local_id, type } = json as { type?: unknown; local_id?: unknown }
  return type === "send" && typeof local_id === "string" && local_id.length > 0 && local_id.length <= 64
    ? local_id
    : undefined
}

/**
 * One WebSocket connection, from the upgrade to the close: authenticate, register, say
 * `welcome`, then answer frames until the socket closes or goes silent.
 */
const runSession = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
  const gateway = yield* Gateway
  const sessions = yield* Sessions
  const auth = yield* Effect.result(sessions.authenticate(tokenOf(request)))
  // The socket outlives this request's fiber (see `Gateway.run`), so it is opened in a scope of
  // its own: the session's reading fiber closes it when it ends, or this fiber if it fails first.
  const scope = yield* Scope.make()
  yield* Effect.gen(function*() {
    const socket = yield* Effect.orDie(gateway.upgrade(request, scope))
    const reader = yield* openReader(socket)
    const writer = yield* Scope.provide(socket.writer, scope)
    if (auth._tag === "Success") return yield* startSession(reader, writer, auth.success, scope)

    const failure = auth.failure
    if (failure._tag === "PortError") yield* Effect.logWarning("connection refused: sessions cannot be checked", failure)
    else yield* Effect.logInfo("connection refused", { reason: failure.reason })
    yield* writer.write(
      failure._tag === "PortError"
        ? new Socket.CloseEvent(CloseCodes.tryAgainLater, "try again later")
        : new Socket.CloseEvent(CloseCodes.unauthorized, failure.message)
    )
    // Wait for the close handshake, so the close frame is not cut off.
    yield* reader.pull.pipe(Effect.forever, Effect.ignore, Effect.timeoutOption("5 seconds"))
    yield* Scope.close(scope, Exit.void)
  }).pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))))
})

/**
 * Opens the connection. The reader acquires it in the context the socket was upgraded in
 * (`Gateway.upgrade`: the gateway's, with the session's scope) merged with the current one, and
 * a merge copies every service into a new map, which the socket would keep (1.8 KB) unless the
 * current context is empty.
 */
const openReader = (socket: Socket.Socket) =>
  Effect.updateContext(socket.reader as Effect.Effect<Socket.Reader, Socket.SocketError>, (_: Context.Context<never>) => Context.empty())

/**
 * Registers the session, says `welcome`, and hands the reading over to a fiber of the gateway,
 * which answers frames until the socket closes or goes silent.
 */
const startSession = Effect.fnUntraced(function*(
  reader: Socket.Reader,
  writer: Socket.Writer,
  auth: { readonly session: SessionId; readonly user: UserId },
  scope: Scope.Closeable
) {
  const gateway = yield* Gateway
  const chat = yield* Chat
  const sessions = yield* Sessions
  const { session: sid, user } = auth

  const session = new SocketSession(randomUUID(), user, sid, writer, gateway.outbox, yield* Clock.currentTimeMillis)
  // Finalizers run last-added first: this one before the reader's release closes the socket.
  yield* Scope.addFinalizer(scope, Effect.sync(() => session.end()))
  // Each send frame starts a trace of its own, linked to the upgrade request's span when it was
  // traced (that span ends once the session is started).
  const connection = yield* Effect.option(Effect.currentSpan)
  const reading: Reading = {
    session,
    chat,
    frameLinks: Option.isSome(connection) ? [{ span: connection.value, attributes: {} }] : [],
    annotations: { user, session: session.id },
    lastTyping: undefined
  }

  yield* gateway.attach(session)
  yield* Scope.addFinalizer(scope, gateway.detach(session))
  // A logout between the check above and the attach found no socket of the session to close.
  if (!(yield* Effect.orElseSucceed(sessions.isActive(sid), () => true))) {
    yield* session.close(CloseCodes.kicked, "logged out")
  }
  session.offer(JSON.stringify({ type: "welcome", user_id: user, heartbeat_timeout_ms: Duration.toMillis(gateway.config.heartbeatTimeout) }))
  yield* Effect.logDebug("session open").pipe(Effect.annotateLogs(reading.annotations))

  // The gateway's heartbeat sweep interrupts this fiber (`session.expire`) to end a silent session.
  session.reading = gateway.run(readFrames(reading, reader).pipe(Effect.onExit((exit) => Scope.close(scope, exit))))
})

/**
 * What the frame handlers below need of one session. The handlers are defined once, not per
 * session: closures made per session (and the scopes they keep) were KBs per idle socket.
 */
interface Reading {
  readonly session: SocketSession
  readonly chat: Chat["Service"]
  readonly frameLinks: ReadonlyArray<Tracer.SpanLink>
  /** Added where something is logged, not to the session's fiber for its whole life. */
  readonly annotations: { readonly user: UserId; readonly session: string }
  /** When a typing signal last passed, per target; made on the first typing frame. */
  lastTyping: Map<string, number> | undefined
}

const readFrames = Effect.fnUntraced(function*(reading: Reading, reader: Socket.Reader) {
  while (true) {
    const frames = yield* reader.pull
    reading.session.lastSeen = yield* Clock.currentTimeMillis
    // Not annotated per frame (a context copy each): the handlers annotate what they log.
    for (const frame of frames) yield* handle(reading, frame)
  }
}, (effect, reading) =>
  effect.pipe(
    Effect.catchReason("SocketError", "SocketCloseError", (error) =>
      Effect.annotateLogs(Effect.logDebug("session closed", { code: error.code }), reading.annotations)),
    Effect.catch((error) => Effect.annotateLogs(Effect.logInfo("session ended", error), reading.annotations))
  ))

const handle = (reading: Reading, data: string | Uint8Array) => {
  const { session } = reading
  if (typeof data !== "string") {
    session.offer(errorFrame("frames are JSON text; binary frames are not accepted"))
    return Metrics.increment(framesReceived.invalid)
  }
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    session.offer(errorFrame("the frame is not valid JSON"))
    return Metrics.increment(framesReceived.invalid)
  }
  const decoded = decodeFrame(json, { onExcessProperty: "ignore" })
  if (decoded._tag === "Failure") {
    const localId = localIdOf(json)
    const message = `invalid frame: ${String(decoded.cause).slice(0, 500)}`
    session.offer(localId === undefined ? errorFrame(message) : sendFailed(localId, "invalid_frame", message))
    return Metrics.increment(framesReceived.invalid)
  }
  const frame = decoded.value
  if (frame.type === "ping") {
    session.offer(`{"type":"pong"}`)
    return Metrics.increment(framesReceived.ping)
  }
  if (frame.type === "typing") return Effect.andThen(Metrics.increment(framesReceived.typing), typing(reading, frame))
  return Effect.andThen(
    Metrics.increment(framesReceived.send),
    send(reading, frame).pipe(
      Metrics.timed(Metrics.gatewaySendDuration),
      Effect.withSpan("Gateway.sendFrame", { root: true, kind: "server", links: reading.frameLinks, attributes: { local_id: frame.local_id } }, {
        // A stack frame per send frame cost 2.5 % of the server; the span's name says where it is.
        captureStackTrace: false
      })
    )
  )
}

const send = Effect.fnUntraced(function*({ annotations, chat, session }: Reading, frame: SendFrame) {
  if (frame.sender_id !== undefined && frame.sender_id !== session.user) {
    return session.offer(sendFailed(frame.local_id, "forbidden_sender", "sender_id must be the authenticated user"))
  }
  const result = yield* Effect.result(chat.send({
    sender_id: session.user,
    local_id: frame.local_id,
    receiver_id: frame.receiver_id,
    group_id: frame.group_id,
    content_type: frame.content_type,
    content: frame.content,
    create_time: frame.create_time
  }))
  if (result._tag === "Success") {
    yield* Effect.logDebug("accepted", { server_id: result.success.server_id }).pipe(Effect.annotateLogs(annotations))
  }
  session.offer(
    result._tag === "Success"
      ? JSON.stringify({ type: "send_result", ok: true, local_id: frame.local_id, ...result.success })
      : sendFailed(frame.local_id, result.failure.code, result.failure.message)
  )
})

// Typing signals pass at most once a second per target; the rest are dropped.
const typing = Effect.fnUntraced(function*(reading: Reading, frame: TypingFrame) {
  const target = `${frame.receiver_id ?? ""}\n${frame.group_id ?? ""}`
  const now = yield* Clock.currentTimeMillis
  const lastTyping = reading.lastTyping ??= new Map()
  if (now - (lastTyping.get(target) ?? -Infinity) < TYPING_INTERVAL_MS) return
  if (lastTyping.size >= 1_000) lastTyping.clear()
  lastTyping.set(target, now)
  const { chat, session } = reading
  const result = yield* Effect.result(chat.typing({ sender_id: session.user, receiver_id: frame.receiver_id, group_id: frame.group_id }))
  if (result._tag === "Failure") {
    session.offer(JSON.stringify({ type: "error", code: result.failure.code, message: result.failure.message }))
  }
})

/** `GET /ws`: the WebSocket endpoint of docs/protocol.md. */
export const GatewayRoutes = HttpRouter.add("GET", "/ws", (request) =>
  runSession(request).pipe(
    Effect.annotateLogs({ service: "ws" }),
    Effect.as(HttpServerResponse.empty())
  ))
