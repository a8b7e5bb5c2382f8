import { NodeHttpServer } from "@effect/platform-node"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Effect } from "effect"
import { HttpServerError, type HttpServerRequest } from "effect/http"
import { type IncomingMessage, Server, ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { WebSocket, WebSocketServer } from "ws"

/** Answers requests that arrive before the routes are attached, then steps aside. */
function answerWhileStarting(this: Server, _request: IncomingMessage, response: ServerResponse) {
  if (this.listenerCount("request") > 1) {
    this.off("request", answerWhileStarting)
    return
  }
  response.writeHead(503, { "content-type": "application/json", "retry-after": "1" })
  response.end(JSON.stringify({ _tag: "ServiceUnavailable", message: "the server is starting" }))
}

const uncork = (socket: Socket, ws: CoalescingWebSocket) => {
  ws.corked = false
  socket.uncork()
}

/**
 * What reads a `CoalescingWebSocket`: its methods get the socket's events. The socket's
 * listeners are functions shared by all sockets, so reading a socket costs no closure of its own.
 */
export interface WebSocketHandler {
  /** A frame: text (`isBinary` false, UTF-8 checked by `ws`) or binary. */
  onMessage(data: Buffer, isBinary: boolean): void
  /** The socket closed; called once. */
  onClose(code: number, reason: Buffer): void
  /** A protocol error (a frame above the size limit, bad UTF-8…); `close` follows. */
  onError(error: Error): void
}

function dispatchMessage(this: WebSocket, data: Buffer, isBinary: boolean) {
  ;(this as CoalescingWebSocket).handler?.onMessage(data, isBinary)
}

function dispatchClose(this: WebSocket, code: number, reason: Buffer) {
  const handler = (this as CoalescingWebSocket).handler
  ;(this as CoalescingWebSocket).handler = undefined
  handler?.onClose(code, reason)
}

function dispatchError(this: WebSocket, error: Error) {
  ;(this as CoalescingWebSocket).handler?.onError(error)
}

/**
 * A server-side WebSocket whose frames sent in one tick leave in one write. `ws` writes each
 * frame to the TCP socket as it is sent, one system call per frame, which was a fifth of a
 * gateway's CPU under load; here the first frame of a tick corks the socket and the next tick
 * uncorks it, so the gateway's writer, which hands a socket all its waiting frames at once,
 * costs one `writev` per socket per tick.
 *
 * Its events go to one `handler` (see `withWebSocket`).
 */
export class CoalescingWebSocket extends WebSocket {
  corked = false
  handler: WebSocketHandler | undefined = undefined

  override send(data: unknown, options?: unknown, cb?: unknown): void {
    if (!this.corked) {
      const socket = (this as unknown as { readonly _socket: Socket | null })._socket
      if (socket !== null && !socket.destroyed) {
        this.corked = true
        socket.cork()
        process.nextTick(uncork, socket, this)
      }
    }
    ;(super.send as (data: unknown, options?: unknown, cb?: unknown) => void)(data, options, cb)
  }

  /** Sends the frames in order; with the socket corked for the tick, in one write. */
  sendAll(frames: ReadonlyArray<string>): void {
    for (const frame of frames) this.send(frame)
  }

  /**
   * Hands the socket's events to `handler` and starts reading. A socket that closed while
   * nobody read it reports its close (1006) to the handler at once.
   */
  handle(handler: WebSocketHandler): void {
    if (this.readyState === WebSocket.CLOSED) {
      handler.onClose(1006, Buffer.alloc(0))
      return
    }
    this.handler = handler
    this.resume()
  }
}

/** A WebSocket upgrade this server took from effect's upgrade handler (see `WebSocketHttpServer`). */
interface TakenUpgrade {
  readonly wss: WebSocketServer
  readonly head: Buffer
  readonly response: ServerResponse
}

const takenUpgrades = new WeakMap<IncomingMessage, TakenUpgrade>()

const isWebSocketUpgrade = (request: IncomingMessage) => {
  const protocol = request.headers.upgrade
  return protocol === undefined || protocol.toLowerCase() === "websocket"
}

function endSocket(this: ServerResponse) {
  this.socket?.end()
}

function ignore() {}

/**
 * A node HTTP server that gives WebSocket upgrade requests to the routes as ordinary requests,
 * for `withWebSocket` to complete. Effect's own upgrade handler keeps, for as long as the socket
 * lives, the request's fiber (its context, the request, the Node request) in a `close`
 * listener of the socket: KBs per idle WebSocket. Here nothing of the request outlives its
 * fiber, and the route answers with an HTTP error exactly as effect's handler would have: the
 * response is on the socket until the upgrade takes it.
 */
class WebSocketHttpServer extends Server {
  readonly wss: WebSocketServer

  constructor(wss: WebSocketServer) {
    super()
    this.wss = wss
  }

  override emit(event: string | symbol, ...args: Array<any>): boolean {
    // Node emits `upgrade` only once there is a listener: once the routes are attached.
    if (event !== "upgrade" || !isWebSocketUpgrade(args[0])) return super.emit(event as string, ...args)
    const [request, socket, head] = args as [IncomingMessage, Socket, Buffer]
    // Called by Node's HTTP parser: a throw here would end the process, so nothing may escape.
    try {
      // An upgrade pipelined behind a request still being answered cannot be answered in order
      // (and its response could not take the socket): the connection is dropped.
      if ((socket as { readonly _httpMessage?: unknown })._httpMessage != null) {
        socket.destroy()
        return true
      }
      const response = new ServerResponse(request)
      response.assignSocket(socket)
      // An HTTP answer ends the connection: its parser is gone with the upgrade.
      response.once("finish", endSocket)
      socket.on("error", ignore)
      takenUpgrades.set(request, { wss: this.wss, head, response })
      return super.emit("request", request, response)
    } catch {
      socket.destroy()
      return true
    }
  }
}

const upgradeError = (request: HttpServerRequest.HttpServerRequest, description: string) =>
  new HttpServerError.HttpServerError({ reason: new HttpServerError.RequestParseError({ request, description }) })

/** The `ws` handshake on `request`'s socket; the socket comes paused, with its listeners set. */
const handshake = (
  request: HttpServerRequest.HttpServerRequest,
  incoming: IncomingMessage,
  wss: WebSocketServer,
  head: Buffer
) =>
  Effect.callback<CoalescingWebSocket, HttpServerError.HttpServerError>((resume) => {
    const socket = incoming.socket
    // A refused handshake (`ws` answers 400) never calls back: it closes the socket.
    const onClose = () => resume(Effect.fail(upgradeError(request, "The socket closed before the upgrade")))
    if (socket.destroyed) return onClose()
    socket.once("close", onClose)
    wss.handleUpgrade(incoming, socket, head, (upgraded) => {
      socket.off("close", onClose)
      // `ws` handles the socket's errors now; a second listener would cost an array per socket.
      socket.off("error", ignore)
      const ws = upgraded as CoalescingWebSocket
      ws.pause()
      ws.on("message", dispatchMessage)
      ws.on("close", dispatchClose)
      ws.on("error", dispatchError)
      resume(Effect.succeed(ws))
    })
    return Effect.sync(() => socket.off("close", onClose))
  })

/**
 * Completes the WebSocket handshake of `request` (101) and runs `use` with the socket, which
 * is paused until it is given a handler (`CoalescingWebSocket.handle`): no frame is read, so
 * none is lost, while `use` sets up what reads it. The request is done once `use` is; the
 * socket keeps nothing of it. Needs the server of `layer`, which hands it the upgrade.
 *
 * Fails as effect's `request.upgrade` does for a request that is not a WebSocket upgrade.
 */
export const withWebSocket = <A, E, R>(
  request: HttpServerRequest.HttpServerRequest,
  use: (socket: CoalescingWebSocket) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | HttpServerError.HttpServerError, R> =>
  Effect.suspend(() => {
    // HTTP/2 has no upgrades: such a request fails below, as with effect's own upgrade.
    const incoming = NodeHttpServerRequest.toIncomingMessage(request) as IncomingMessage
    const taken = takenUpgrades.get(incoming)
    if (taken !== undefined) {
      takenUpgrades.delete(incoming)
      // From here on the socket is the WebSocket's: no HTTP answer may be written on it.
      if (taken.response.socket !== null) taken.response.detachSocket(incoming.socket)
      return Effect.flatMap(handshake(request, incoming, taken.wss, taken.head), (ws) => useOrDrop(ws, use))
    }
    if ((incoming as { readonly upgrade?: boolean }).upgrade !== true) return Effect.flatMap(request.upgrade, () => Effect.die("unreachable: not an upgrade request"))
    if (!isWebSocketUpgrade(incoming)) return Effect.fail(upgradeError(request, "not a WebSocket upgrade"))
    return Effect.die(new Error("withWebSocket needs the server of @im/platform/HttpServer.layer"))
  })

/**
 * Runs `use`; if it fails or is interrupted before it gave the socket a handler, nothing would
 * ever read or close the (paused) socket, so it is dropped.
 */
const useOrDrop = <A, E, R>(ws: CoalescingWebSocket, use: (socket: CoalescingWebSocket) => Effect.Effect<A, E, R>) =>
  Effect.onError(use(ws), () =>
    Effect.sync(() => {
      if (ws.handler === undefined) ws.terminate()
    }))

/**
 * The HTTP (and WebSocket) server of a service. It listens before the routes are attached;
 * until they are, it answers 503 rather than leaving early requests without an answer.
 * WebSocket upgrades are completed by `withWebSocket` in the route; frames above
 * `maxFrameBytes` close the socket with 1009; frames sent to one socket in one tick are written
 * together (CoalescingWebSocket).
 */
export const layer = (options: { readonly host: string; readonly port: number; readonly maxFrameBytes?: number }) => {
  const websocket = {
    WebSocket: CoalescingWebSocket,
    ...(options.maxFrameBytes === undefined ? {} : { maxPayload: options.maxFrameBytes })
  }
  return NodeHttpServer.layer(
    () =>
      new WebSocketHttpServer(new WebSocketServer({ ...websocket, noServer: true, clientTracking: false }))
        .on("request", answerWhileStarting),
    { host: options.host, port: options.port, websocket }
  )
}
