import { NodeHttpServer } from "@effect/platform-node"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"

/** Answers requests that arrive before the routes are attached, then steps aside. */
function answerWhileStarting(this: Server, _request: IncomingMessage, response: ServerResponse) {
  if (this.listenerCount("request") > 1) {
    this.off("request", answerWhileStarting)
    return
  }
  response.writeHead(503, { "content-type": "application/json", "retry-after": "1" })
  response.end(JSON.stringify({ _tag: "ServiceUnavailable", message: "the server is starting" }))
}

/**
 * The HTTP (and WebSocket) server of a service. It listens before the routes are attached;
 * until they are, it answers 503 rather than leaving early requests without an answer.
 * WebSocket frames above `maxFrameBytes` close the socket with 1009.
 */
export const layer = (options: { readonly host: string; readonly port: number; readonly maxFrameBytes?: number }) =>
  NodeHttpServer.layer(() => createServer().on("request", answerWhileStarting), {
    host: options.host,
    port: options.port,
    ...(options.maxFrameBytes === undefined ? {} : { websocket: { maxPayload: options.maxFrameBytes } })
  })
