import { Sessions } from "@im/auth/Sessions"
import type { TokenRejected } from "@im/auth/Tokens"
import { Chat } from "@im/chat/Chat"
import { SendRejected } from "@im/domain/Errors"
import { ClientFrame, CloseCodes, type SendFrame, type TypingFrame } from "@im/domain/Frames"
import type { SessionId, UserId } from "@im/domain/Ids"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import type { PortError } from "@im/ports/PortError"
import * as HttpServer from "@im/platform/HttpServer"
import type { CoalescingWebSocket } from "@im/platform/HttpServer"
import { Clock, Duration, Effect, Fiber, LogLevel, Option, Schema, type Tracer } from "effect"
import { HttpRouter, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { randomBytes } from "node:crypto"
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
 * One WebSocket connection: authenticate, complete the upgrade, then register the session and
 * say `welcome` (or close a refused one). The request ends there: the socket's events drive the
 * session (`SocketSession`), and nothing of the request stays with it.
 */
const runSession = Effect.fnUntraced(function*(request: HttpServerRequest.HttpServerRequest) {
  const sessions = yield* Sessions
  const auth = yield* Effect.result(sessions.authenticate(tokenOf(request)))
  yield* Effect.orDie(HttpServer.withWebSocket(request, (socket) =>
    auth._tag === "Success" ? startSession(socket, auth.success) : refuse(socket, auth.failure)))
})

const refuse = (socket: CoalescingWebSocket, failure: TokenRejected | PortError) =>
  Effect.gen(function*() {
    if (failure._tag === "PortError") yield* Effect.logWarning("connection refused: sessions cannot be checked", failure)
    else yield* Effect.logInfo("connection refused", { reason: failure.reason })
    if (failure._tag === "PortError") socket.close(CloseCodes.tryAgainLater, "try again later")
    else socket.close(CloseCodes.unauthorized, failure.message)
    // Read on, for the peer's answer to the close (`ws` then ends the connection).
    socket.resume()
  })

/**
 * Registers the session, says `welcome`, and hands the socket's events to the session, which
 * answers frames until the socket closes or goes silent.
 */
const startSession = Effect.fnUntraced(function*(
  socket: CoalescingWebSocket,
  auth: { readonly session: SessionId; readonly user: UserId }
) {
  const gateway = yield* Gateway
  const chat = yield* Chat
  const sessions = yield* Sessions
  const { session: sid, user } = auth
  // Each send frame starts a trace of its own, linked to the upgrade request's span when it was
  // traced (that span ends once the session is started).
  const connection = yield* TraceContext.currentSpan
  const frameLinks = Option.isSome(connection) ? [{ span: connection.value, attributes: {} }] : noLinks
  const session = new ClientSession(newSessionId(), user, sid, socket, gateway, gateway.now(), chat, frameLinks)

  yield* Effect.gen(function*() {
    yield* gateway.attach(session)
    // A logout between the check above and the attach found no socket of the session to close.
    if (!(yield* Effect.orElseSucceed(sessions.isActive(sid), () => true))) {
      yield* session.close(CloseCodes.kicked, "logged out")
    }
    session.offer(JSON.stringify({ type: "welcome", user_id: user, heartbeat_timeout_ms: Duration.toMillis(gateway.config.heartbeatTimeout) }))
    yield* Effect.logDebug("session open").pipe(Effect.annotateLogs(session.annotations))
  }).pipe(Effect.onError((cause) => session.abandon(cause)))
  // Frames that arrived meanwhile waited in the socket; they are read from here on, after welcome.
  socket.handle(session)
})

const noLinks: ReadonlyArray<Tracer.SpanLink> = []

/**
 * A random id of a socket (128 bits, base64url). Not `randomUUID()`, whose string is a chain of
 * 14 concatenated pieces (448 bytes) that every idle session would keep.
 */
const newSessionId = () => randomBytes(16).toString("base64url")

/**
 * A session of a client: answers its frames. What the frame handlers below need of it is on
 * the session; the handlers are defined once, not per session (closures made per session, and
 * the scopes they keep, were KBs per idle socket).
 */
class ClientSession extends SocketSession {
  readonly chat: Chat["Service"]
  readonly frameLinks: ReadonlyArray<Tracer.SpanLink>
  /** When a typing signal last passed, per target; made on the first typing frame. */
  lastTyping: Map<string, number> | undefined = undefined

  constructor(
    id: string,
    user: UserId,
    sid: SessionId,
    socket: CoalescingWebSocket,
    gateway: Gateway["Service"],
    now: number,
    chat: Chat["Service"],
    frameLinks: ReadonlyArray<Tracer.SpanLink>
  ) {
    super(id, user, sid, socket, gateway, now)
    this.chat = chat
    this.frameLinks = frameLinks
  }

  /** WS_SEND_TIMEOUT (a getter: nothing more stored per session). */
  get sendTimeout(): Duration.Duration {
    return this.gateway.config.sendTimeout
  }

  override answer(frame: string | Uint8Array): Effect.Effect<void> {
    return handle(this, frame)
  }

  /**
   * A ping in the form clients send it is answered here, without the fiber, parse and decode of
   * other frames: with 20,000 idle sockets, heartbeats are most of a gateway's frames. A ping
   * written any other way takes the general path, with the same answer.
   */
  protected override answerAtOnce(data: Buffer): boolean {
    if (!data.equals(PING)) return false
    this.pong()
    return true
  }

  /** Answers a ping, however it came. */
  pong(): void {
    this.offer(`{"type":"pong"}`)
    this.gateway.increment(framesReceived.ping)
  }
}

/** A ping as the clients (`@im/client`, the web client, the bench) write it: `JSON.stringify({ type: "ping" })`. */
export const PING = Buffer.from(`{"type":"ping"}`)

const handle = (session: ClientSession, data: string | Uint8Array): Effect.Effect<void> => {
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
  if (frame.type === "ping") return Effect.sync(() => session.pong())
  if (frame.type === "typing") return Effect.andThen(Metrics.increment(framesReceived.typing), typing(session, frame))
  return Effect.andThen(
    Metrics.increment(framesReceived.send),
    send(session, frame).pipe(
      Metrics.timed(Metrics.gatewaySendDuration),
      TraceContext.span("Gateway.sendFrame", { root: true, kind: "server", links: session.frameLinks, attributes: { local_id: frame.local_id } })
    )
  )
}

const send = Effect.fnUntraced(function*(session: ClientSession, frame: SendFrame) {
  const { chat } = session
  if (frame.sender_id !== undefined && frame.sender_id !== session.user) {
    return session.offer(sendFailed(frame.local_id, "forbidden_sender", "sender_id must be the authenticated user"))
  }
  const result = yield* Effect.result(withinSendTimeout(
    session,
    chat.send({
      sender_id: session.user,
      local_id: frame.local_id,
      receiver_id: frame.receiver_id,
      group_id: frame.group_id,
      content_type: frame.content_type,
      content: frame.content,
      create_time: frame.create_time
    })
  ))
  // Checked first: the log's annotations cost a few steps of every send even when not logged.
  if (result._tag === "Success" && (yield* LogLevel.isEnabled("Debug"))) {
    yield* Effect.logDebug("accepted", { server_id: result.success.server_id }).pipe(Effect.annotateLogs(session.annotations))
  }
  session.offer(
    result._tag === "Success"
      ? JSON.stringify({ type: "send_result", ok: true, local_id: frame.local_id, ...result.success })
      : sendFailed(frame.local_id, result.failure.code, result.failure.message)
  )
})

/**
 * Chat's answer, or `unavailable` once WS_SEND_TIMEOUT has passed (the call is interrupted): the
 * session's later frames wait for this one, and the client sends a send again under the same
 * `local_id`, which chat and the stores keep once, whether or not the interrupted call got its
 * message onto the bus.
 */
const withinSendTimeout = <A>(session: ClientSession, call: Effect.Effect<A, SendRejected>): Effect.Effect<A, SendRejected> => {
  const timeout = session.sendTimeout
  return withinDeadline(call, Duration.toMillis(timeout), () =>
    Effect.andThen(
      Effect.logWarning("chat did not answer a frame in time", { timeout: Duration.format(timeout) }).pipe(
        Effect.annotateLogs(session.annotations),
        Effect.andThen(Metrics.error("ws", "chat_timeout"))
      ),
      Effect.fail(
        new SendRejected({ code: "unavailable", message: `the server did not answer within ${Duration.format(timeout)}; send it again` })
      )
    ))
}

/**
 * `call`'s outcome, or `orElse`'s once `millis` have passed without one, the call interrupted
 * first: `Effect.timeoutOrElse`, made for a path every send takes. That one races two fibers
 * (the call's and a sleeping one's) and interrupts the loser; here the call runs in one fiber
 * (with the caller's context) and a timer of the process (not Effect's Clock) stands for the
 * other, cleared when the call ends. A call that ends at once starts no timer. The call is forked
 * inside the wait, whose cleanup interrupts it: a caller interrupted at any point leaves no call
 * running.
 */
export const withinDeadline = <A, E>(
  call: Effect.Effect<A, E>,
  millis: number,
  orElse: () => Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  Effect.withFiber((caller) =>
    Effect.callback<A, E>((resume) => {
      const fiber = Effect.runForkWith(caller.context)(call)
      const ended = fiber.pollUnsafe()
      if (ended !== undefined) return resume(ended)
      let timer: ReturnType<typeof setTimeout>
      // Node fires a timer of more than MAX_TIMER_MS at once: a longer deadline waits in steps.
      const arm = (left: number) => {
        timer = setTimeout(
          () => left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : resume(Effect.andThen(Fiber.interrupt(fiber), orElse())),
          Math.min(left, MAX_TIMER_MS)
        )
      }
      arm(millis)
      fiber.addObserver((exit) => {
        clearTimeout(timer)
        resume(exit)
      })
      return Effect.suspend(() => {
        clearTimeout(timer)
        return Fiber.interrupt(fiber)
      })
    })
  )

/** The longest delay `setTimeout` keeps (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

// Typing signals pass at most once a second per target; the rest are dropped.
const typing = Effect.fnUntraced(function*(session: ClientSession, frame: TypingFrame) {
  const target = `${frame.receiver_id ?? ""}\n${frame.group_id ?? ""}`
  const now = yield* Clock.currentTimeMillis
  const lastTyping = session.lastTyping ??= new Map()
  if (now - (lastTyping.get(target) ?? -Infinity) < TYPING_INTERVAL_MS) return
  if (lastTyping.size >= 1_000) lastTyping.clear()
  lastTyping.set(target, now)
  const result = yield* Effect.result(
    withinSendTimeout(session, session.chat.typing({ sender_id: session.user, receiver_id: frame.receiver_id, group_id: frame.group_id }))
  )
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
