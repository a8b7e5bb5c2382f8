import type { AddressInfo, Socket } from "node:net"
import { afterEach, describe, expect, it } from "vitest"
import { WebSocket, WebSocketServer } from "ws"
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
