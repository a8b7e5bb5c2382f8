import { assert, describe, it } from "@effect/vitest"
import { Sessions } from "@im/auth/Sessions"
import { Tokens } from "@im/auth/Tokens"
import { Chat } from "@im/chat/Chat"
import { GatewayId, ServerId, UserId } from "@im/domain/Ids"
import { Gateway } from "@im/gateway/Gateway"
import { GatewayRoutes } from "@im/gateway/GatewayRoutes"
import * as HttpServerLayer from "@im/platform/HttpServer"
import { Presence } from "@im/ports/Presence"
import { SessionStore } from "@im/ports/SessionStore"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { exposition } from "@im/observability/Prometheus"
import { randomBytes } from "node:crypto"
import { openRaw, sendFrame } from "./Raw.ts"

/**
 * The gateway answers a send (or typing) frame that chat does not answer within WS_SEND_TIMEOUT
 * with `unavailable`, interrupts the call, and goes on with the socket's next frames. Chat here
 * is a double: a send whose content is `hang`, and typing to `u_hang`, never return.
 */

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")
const hangingReceiver = UserId.make("u_hang")
const SEND_TIMEOUT = Duration.millis(300)

/**
 * The gateway's WebSocket route on a free port, with the chat double, in the caller's scope (so
 * the sockets a test opens after it close before it); alice's token, and the calls interrupted.
 */
const startServer = Effect.gen(function*() {
  const interrupted: Array<string> = []
  const hang = (what: string) => Effect.onInterrupt(Effect.never, () => Effect.sync(() => void interrupted.push(what)))
  const chat = Chat.of({
    send: (request) =>
      request.content === "hang"
        ? hang(`send ${request.local_id}`)
        : Effect.succeed({ server_id: ServerId.make(`m_${request.local_id}`), send_time: 1 }),
    typing: (request) => request.receiver_id === hangingReceiver ? hang("typing") : Effect.void,
    notify: () => Effect.die("not used")
  })
  const sessions = Sessions.layer.pipe(
    Layer.provide([
      Layer.succeed(Tokens, Tokens.make(Redacted.make(randomBytes(32).toString("hex")), Duration.hours(1))),
      SessionStore.layerMemory
    ])
  )
  const gateway = Layer.effect(
    Gateway,
    Gateway.make({
      id: GatewayId.make("ws-1"),
      heartbeatTimeout: Duration.seconds(60),
      sendTimeout: SEND_TIMEOUT,
      sendQueueCapacity: 100,
      dropMarkedPushes: false
    })
  )
  const built = yield* Layer.build(
    HttpRouter.serve(GatewayRoutes, { disableLogger: true, disableListenLog: true }).pipe(
      Layer.provideMerge(HttpServerLayer.layer({ host: "127.0.0.1", port: 0 })),
      Layer.provideMerge(gateway),
      Layer.provideMerge(sessions),
      Layer.provide([Layer.succeed(Chat, chat), Presence.layerMemory])
    )
  )
  const { token } = yield* Context.get(built, Sessions).start(alice)
  const { port } = Context.get(built, HttpServer.HttpServer).address as { readonly port: number }
  const connect = Effect.gen(function*() {
    const socket = yield* Effect.acquireRelease(
      Effect.promise(() => openRaw(`ws://127.0.0.1:${port}/ws?token=${token}`)),
      (socket) => Effect.sync(() => socket.close())
    )
    yield* Effect.promise(() => socket.next((frame) => frame.type === "welcome"))
    return socket
  })
  return { connect, interrupted }
})

/** `im_errors_total{service="ws",kind="chat_timeout"}` as `/metrics` shows it (0 before the first). */
const chatTimeouts = Effect.map(exposition, (text) => {
  const line = text.split("\n").find((line) => line.startsWith(`im_errors_total{service="ws",kind="chat_timeout"} `))
  return line === undefined ? 0 : Number(line.split(" ").at(-1))
})

describe("WS_SEND_TIMEOUT", () => {
  it.live("a send chat does not answer is answered unavailable, its call interrupted, and the next frames are answered", () =>
    Effect.gen(function*() {
      const { connect, interrupted } = yield* startServer
      const socket = yield* connect
      const timeoutsBefore = yield* chatTimeouts
      const started = Date.now()
      socket.send(sendFrame(bob, "hang", "l-hang"))
      socket.send(sendFrame(bob, "fine", "l-fine"))
      const hung = yield* Effect.promise(() => socket.next((frame) => frame.type === "send_result"))
      const waited = Date.now() - started
      assert.strictEqual(hung.local_id, "l-hang", "the frames are answered in order")
      assert.isFalse(hung.ok)
      assert.strictEqual(hung.error.code, "unavailable")
      assert.match(hung.error.message, /did not answer within 300ms/)
      assert.isAtLeast(waited, 250, "answered once the timeout passed, not before")
      assert.deepStrictEqual(interrupted, ["send l-hang"])
      assert.strictEqual((yield* chatTimeouts) - timeoutsBefore, 1, "counted in im_errors_total")
      const fine = yield* Effect.promise(() => socket.next((frame) => frame.type === "send_result"))
      assert.deepStrictEqual(
        { local_id: fine.local_id, ok: fine.ok, server_id: fine.server_id },
        { local_id: "l-fine", ok: true, server_id: "m_l-fine" }
      )
    }))

  it.live("a typing frame chat does not answer gets an unavailable error, and the socket goes on", () =>
    Effect.gen(function*() {
      const { connect, interrupted } = yield* startServer
      const socket = yield* connect
      socket.send({ type: "typing", receiver_id: hangingReceiver })
      socket.send(sendFrame(bob, "after typing", "l-after"))
      const error = yield* Effect.promise(() => socket.next((frame) => frame.type === "error"))
      assert.strictEqual(error.code, "unavailable")
      assert.include(interrupted, "typing")
      const after = yield* Effect.promise(() => socket.next((frame) => frame.type === "send_result"))
      assert.deepStrictEqual({ local_id: after.local_id, ok: after.ok }, { local_id: "l-after", ok: true })
    }))
})
