import { NodeHttpServer } from "@effect/platform-node"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { WebSocket } from "ws"

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
 * A server-side WebSocket whose frames sent in one tick leave in one write. `ws` writes each
 * frame to the TCP socket as it is sent, one system call per frame, which was a fifth of a
 * gateway's CPU under load; here the first frame of a tick corks the socket and the next tick
 * uncorks it, so the gateway's writer, which hands a socket all its waiting frames at once,
 * costs one `writev` per socket per tick.
 */
export class CoalescingWebSocket extends WebSocket {
  corked = false

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
}

/**
 * The HTTP (and WebSocket) server of a service. It listens before the routes are attached;
 * until they are, it answers 503 rather than leaving early requests without an answer.
 * WebSocket frames above `maxFrameBytes` close the socket with 1009; frames sent to one socket
 * in one tick are written together (CoalescingWebSocket).
 */
export const layer = (options: { readonly host: string; readonly port: number; readonly maxFrameBytes?: number }) =>
  NodeHttpServer.layer(() => createServer().on("request", answerWhileStarting), {
    host: options.host,
    port: options.port,
    websocket: {
      WebSocket: CoalescingWebSocket,
      ...(options.maxFrameBytes === undefined ? {} : { maxPayload: options.maxFrameBytes })
    }
  })
