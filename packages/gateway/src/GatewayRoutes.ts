import { Sessions } from "@im/auth/Sessions"
import { Chat } from "@im/chat/Chat"
import { ClientFrame, CloseCodes, type SendFrame, type TypingFrame } from "@im/domain/Frames"
import * as Metrics from "@im/observability/Metrics"
import { Clock, Duration, Effect, Option, Queue, Schema, type Tracer } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import * as Socket from "effect/socket/Socket"
import { randomUUID } from "node:crypto"
import { Gateway, type Session } from "./Gateway.ts"

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
  const chat = yield* Chat
  const sessions = yield* Sessions
  const auth = yield* Effect.result(sessions.authenticate(tokenOf(request)))
  const socket = yield* Effect.orDie(request.upgrade)
  // The reader opens the connection; the writer waits for it.
  const reader = yield* socket.reader
  const writer = yield* socket.writer

  if (auth._tag === "Failure") {
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
    return
  }
  const { session: sid, user } = auth.success

  const outbound = yield* Queue.bounded<string>(gateway.config.sendQueueCapacity)
  const session: Session = {
    id: randomUUID(),
    user,
    sid,
    offer: (frame) => Queue.offerUnsafe(outbound, frame),
    close: (code, reason) => writer.write(new Socket.CloseEvent(code, reason)).pipe(Effect.ignore)
  }
  yield* Effect.annotateLogsScoped({ user, session: session.id })
  // Each send frame starts a trace of its own (the connection's span lasts as long as the
  // socket), linked to the connection's span when the upgrade request was traced.
  const connection = yield* Effect.option(Effect.currentSpan)
  const frameLinks: ReadonlyArray<Tracer.SpanLink> = Option.isSome(connection) ? [{ span: connection.value, attributes: {} }] : []

  // Frames are written by one fiber, in the order they were queued.
  yield* Queue.takeAll(outbound).pipe(
    Effect.flatMap((frames) => writer.writeAll(frames)),
    Effect.forever,
    Effect.ignore,
    Effect.forkScoped
  )

  yield* Effect.acquireRelease(gateway.attach(session), () => gateway.detach(session))
  // A logout between the check above and the attach found no socket of the session to close.
  if (!(yield* Effect.orElseSucceed(sessions.isActive(sid), () => true))) {
    yield* session.close(CloseCodes.kicked, "logged out")
  }
  const timeout = gateway.config.heartbeatTimeout
  session.offer(JSON.stringify({ type: "welcome", user_id: user, heartbeat_timeout_ms: Duration.toMillis(timeout) }))
  yield* Effect.logDebug("session open")

  let lastSeen = yield* Clock.currentTimeMillis
  // Completes when the peer has been silent too long: the session ends without waiting for a
  // dead peer to answer the close handshake.
  const silence = Effect.gen(function*() {
    const limit = Duration.toMillis(timeout)
    while (true) {
      yield* Effect.sleep(Duration.millis(Math.max(10, limit / 4)))
      if ((yield* Clock.currentTimeMillis) - lastSeen > limit) break
    }
    yield* Effect.logInfo("heartbeat timeout")
    yield* session.close(CloseCodes.heartbeatTimeout, "heartbeat timeout")
  })

  const send = Effect.fnUntraced(function*(frame: SendFrame) {
    if (frame.sender_id !== undefined && frame.sender_id !== user) {
      return session.offer(sendFailed(frame.local_id, "forbidden_sender", "sender_id must be the authenticated user"))
    }
    const result = yield* Effect.result(chat.send({
      sender_id: user,
      local_id: frame.local_id,
      receiver_id: frame.receiver_id,
      group_id: frame.group_id,
      content_type: frame.content_type,
      content: frame.content,
      create_time: frame.create_time
    }))
    if (result._tag === "Success") yield* Effect.logDebug("accepted", { server_id: result.success.server_id })
    session.offer(
      result._tag === "Success"
        ? JSON.stringify({ type: "send_result", ok: true, local_id: frame.local_id, ...result.success })
        : sendFailed(frame.local_id, result.failure.code, result.failure.message)
    )
  })

  // Typing signals pass at most once a second per target; the rest are dropped.
  const lastTyping = new Map<string, number>()
  const typing = Effect.fnUntraced(function*(frame: TypingFrame) {
    const target = `${frame.receiver_id ?? ""}\n${frame.group_id ?? ""}`
    const now = yield* Clock.currentTimeMillis
    if (now - (lastTyping.get(target) ?? -Infinity) < TYPING_INTERVAL_MS) return
    if (lastTyping.size >= 1_000) lastTyping.clear()
    lastTyping.set(target, now)
    const result = yield* Effect.result(chat.typing({ sender_id: user, receiver_id: frame.receiver_id, group_id: frame.group_id }))
    if (result._tag === "Failure") {
      session.offer(JSON.stringify({ type: "error", code: result.failure.code, message: result.failure.message }))
    }
  })

  const handle = (data: string | Uint8Array) => {
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
    if (frame.type === "typing") return Effect.andThen(Metrics.increment(framesReceived.typing), typing(frame))
    return Effect.andThen(
      Metrics.increment(framesReceived.send),
      send(frame).pipe(
        Metrics.timed(Metrics.gatewaySendDuration),
        Effect.withSpan("Gateway.sendFrame", { root: true, kind: "server", links: frameLinks, attributes: { local_id: frame.local_id } })
      )
    )
  }

  const readFrames = Effect.gen(function*() {
    while (true) {
      const frames = yield* reader.pull
      lastSeen = yield* Clock.currentTimeMillis
      for (const frame of frames) yield* handle(frame)
    }
  }).pipe(
    Effect.catchReason("SocketError", "SocketCloseError", (error) => Effect.logDebug("session closed", { code: error.code })),
    Effect.catch((error) => Effect.logInfo("session ended", error))
  )
  yield* Effect.raceFirst(readFrames, silence)
}, Effect.scoped)

/** `GET /ws`: the WebSocket endpoint of docs/protocol.md. */
export const GatewayRoutes = HttpRouter.add("GET", "/ws", (request) =>
  runSession(request).pipe(
    Effect.annotateLogs({ service: "ws" }),
    Effect.as(HttpServerResponse.empty())
  ))
