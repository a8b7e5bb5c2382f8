import { it as itEffect } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServer as EffectHttpServer, HttpServerResponse } from "effect/http"
import { type AddressInfo, connect, type Socket } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { WebSocket, WebSocketServer } from "ws"
import * as HttpServer from "../src/HttpServer.ts"
import { CoalescingWebSocket } from "../src/HttpServer.ts"

const servers: Array<WebSocketServer> = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))))
})

/**
 * Connects a client to a server whose sockets are made by `socketClass`, sends `ticks` (each
 * a list of frames sent in one tick) from the server, and counts the writes that reached the
 * server's TCP handle (`_writeGeneric`: one per write or writev system call).
 */
const exchange = async (socketClass: typeof WebSocket, ticks: ReadonlyArray<ReadonlyArray<string>>) => {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0, WebSocket: socketClass })
  servers.push(server)
  await new Promise((resolve) => server.once("listening", resolve))
  const expected = ticks.flat().length
  let writes = 0
  server.once("connection", async (ws) => {
    const socket = (ws as unknown as { readonly _socket: Socket & { _writeGeneric: (...args: Array<unknown>) => void } })._socket
    const writeGeneric = socket._writeGeneric
    socket._writeGeneric = function(...args) {
      writes++
      return writeGeneric.apply(this, args)
    }
    for (const frames of ticks) {
      for (const frame of frames) ws.send(frame)
      await new Promise((resolve) => setImmediate(resolve))
    }
  })
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`)
  const received = await new Promise<Array<string>>((resolve, reject) => {
    const frames: Array<string> = []
    client.on("message", (data) => {
      frames.push(String(data))
      if (frames.length === expected) resolve(frames)
    })
    client.on("error", reject)
  })
  client.close()
  return { received, writes }
}

describe("CoalescingWebSocket", () => {
  it("writes the frames sent to a socket in one tick with one write, in order", async () => {
    const ticks = [["a1", "a2", "a3"], ["b1"], ["c1", "c2"]]
    const { received, writes } = await exchange(CoalescingWebSocket, ticks)
    expect(received).toEqual(["a1", "a2", "a3", "b1", "c1", "c2"])
    expect(writes).toBe(3)
  })

  it("(control) ws alone writes every frame on its own", async () => {
    const { received, writes } = await exchange(WebSocket, [["a1", "a2", "a3"], ["b1"]])
    expect(received).toEqual(["a1", "a2", "a3", "b1"])
    expect(writes).toBe(4)
  })
})

describe("HttpServer.layer and withWebSocket", () => {
  const routes = Layer.mergeAll(
    HttpRouter.add("GET", "/health", () => Effect.succeed(HttpServerResponse.text("ok"))),
    HttpRouter.add("GET", "/ws", (request) =>
      HttpServer.withWebSocket(request, (socket) =>
        Effect.sync(() => {
          socket.close(1000, "bye")
          socket.resume()
        })).pipe(Effect.as(HttpServerResponse.empty()))),
    HttpRouter.add("GET", "/broken", (request) =>
      HttpServer.withWebSocket(request, () => Effect.die(new Error("the session could not start"))).pipe(
        Effect.as(HttpServerResponse.empty())
      ))
  )
  const serve = HttpRouter.serve(routes).pipe(Layer.provideMerge(HttpServer.layer({ host: "127.0.0.1", port: 0 })))

  const portOf = Effect.map(Effect.service(EffectHttpServer.HttpServer), (server) => (server.address as { readonly port: number }).port)

  /** Sends `text` on a fresh connection; what came back once the server ends it, or once `enough` says so. */
  const raw = (port: number, text: string, enough: (answer: string) => boolean = () => false) =>
    Effect.promise(() =>
      new Promise<string>((resolve) => {
        let answer = ""
        const socket = connect(port, "127.0.0.1", () => socket.write(text))
        socket.on("data", (chunk) => {
          answer += chunk.toString("latin1")
          if (enough(answer)) socket.destroy()
        })
        socket.on("error", () => resolve(answer))
        socket.on("close", () => resolve(answer))
      })
    )

  const upgrade = [
    "GET /ws HTTP/1.1",
    "Host: 127.0.0.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    "",
    ""
  ].join("\r\n")

  itEffect.live("an upgrade pipelined behind another request drops that connection and nothing else", () =>
    Effect.gen(function*() {
      const port = yield* portOf
      // Before the fix, Node's parser callback threw ERR_HTTP_SOCKET_ASSIGNED: the process ended.
      yield* raw(port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${upgrade}`)
      const answer = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.text()))
      expect(answer).toBe("ok")
      // A lone upgrade still works: 101, then the route's close frame.
      const upgraded = yield* raw(port, upgrade, (answer) => answer.includes("bye"))
      expect(upgraded.startsWith("HTTP/1.1 101")).toBe(true)
    }).pipe(Effect.provide(serve)), 20_000)

  itEffect.live("a socket whose route failed after the handshake is dropped, not left open and unread", () =>
    Effect.gen(function*() {
      const port = yield* portOf
      // Without the drop nothing reads or closes it: the connection would stay open for ever.
      const answer = yield* raw(port, upgrade.replace("GET /ws", "GET /broken"))
      expect(answer.startsWith("HTTP/1.1 101")).toBe(true)
    }).pipe(Effect.provide(serve)), 20_000)
})
