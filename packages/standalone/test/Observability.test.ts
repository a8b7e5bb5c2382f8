import { Tokens } from "@im/auth/Tokens"
import { ConversationStore } from "@im/ports/ConversationStore"
import { FileRecords } from "@im/ports/FileRecords"
import { FriendStore } from "@im/ports/FriendStore"
import { GroupStore } from "@im/ports/GroupStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { SeqStore } from "@im/ports/SeqStore"
import { SessionStore } from "@im/ports/SessionStore"
import { UserStore } from "@im/ports/UserStore"
import { ConfigProvider, Duration, Effect, Layer, ManagedRuntime, Option, Redacted, Tracer } from "effect"
import { HttpServer } from "effect/http"
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeStandalone } from "../src/Standalone.ts"

/**
 * Standalone mode, observed: every span it makes goes to an in-memory tracer, and one message
 * sent over a real WebSocket must make one trace from the ws frame to its delivery; GET
 * /metrics must count it.
 */

const spans: Array<Tracer.NativeSpan> = []
const recordingTracer = Tracer.make({
  span(options) {
    const span = new Tracer.NativeSpan(options)
    spans.push(span)
    return span
  }
})

let runtime: ManagedRuntime.ManagedRuntime<HttpServer.HttpServer, unknown>
let base = ""
const localId = randomUUID()
let serverId = ""

const post = async (path: string, body: unknown) => {
  const response = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as any }
}

/** A socket that collects its frames; resolves once the server said welcome. */
const connect = (token: string) =>
  new Promise<{ socket: WebSocket; frames: Array<any> }>((resolve, reject) => {
    const socket = new WebSocket(`${base.replace("http", "ws")}/ws?token=${token}`)
    const frames: Array<any> = []
    socket.onmessage = (event) => {
      frames.push(JSON.parse(String(event.data)))
      if (frames.length === 1) resolve({ socket, frames })
    }
    socket.onerror = reject
  })

const eventually = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

beforeAll(async () => {
  const app = makeStandalone({
    storage: Layer.mergeAll(UserStore.layerMemory, GroupStore.layerMemory, HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, SessionStore.layerMemory, FileRecords.layerMemory, FriendStore.layerMemory),
    tokens: Layer.succeed(Tokens, Tokens.make(Redacted.make("x".repeat(32)), Duration.hours(1))),
    listen: { port: 0, host: "127.0.0.1", maxFrameBytes: 65536 }
  }).pipe(
    Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({}))),
    Layer.provide(Layer.succeed(Tracer.Tracer, recordingTracer))
  )
  runtime = ManagedRuntime.make(app)
  const server = await runtime.runPromise(Effect.service(HttpServer.HttpServer))
  base = `http://127.0.0.1:${(server.address as { port: number }).port}`

  await post("/auth/register", { account: "alice", password: "password1", name: "Alice" })
  const bob = await post("/auth/register", { account: "bob", password: "password2", name: "Bob" })
  const a = await connect((await post("/auth/login", { account: "alice", password: "password1" })).body.token)
  const b = await connect((await post("/auth/login", { account: "bob", password: "password2" })).body.token)
  a.socket.send(JSON.stringify({ type: "send", local_id: localId, receiver_id: bob.body.id, content_type: "text", content: "trace me", create_time: Date.now() }))
  await eventually(() => b.frames.some((frame) => frame.type === "message") && a.frames.some((frame) => frame.type === "message"), "the pushes")
  serverId = a.frames.find((frame) => frame.type === "send_result").server_id
  // The batch's span ends once the push returned.
  await eventually(() => spans.some((span) => span.name === "Consumer.handleBatch" && span.status._tag === "Ended"), "the batch's span to end")
  a.socket.close()
  b.socket.close()
}, 30_000)

afterAll(() => runtime?.dispose())

describe("standalone, observed", () => {
  it("one trace: the ws frame → Chat.send → Chat.publish → (bus) Consumer.handleBatch → Db.save, Pusher.push → Gateway.deliver", () => {
    const frame = spans.find((span) => span.name === "Gateway.sendFrame" && span.attributes.get("local_id") === localId)
    expect(frame, "the frame's span").toBeDefined()
    // A trace of its own, linked to the connection's (the upgrade request's) span.
    expect(Option.isNone(frame!.parent)).toBe(true)
    expect(frame!.links.map((link) => (link.span as Tracer.Span).name)).toEqual(["GET"])
    const trace = spans.filter((span) => span.traceId === frame!.traceId)
    const one = (name: string) => {
      const found = trace.filter((span) => span.name === name)
      expect(found.map((span) => span.name), `one ${name} in the trace`).toEqual([name])
      return found[0]!
    }
    const parentOf = (span: Tracer.NativeSpan) => Option.getOrUndefined(span.parent)?.spanId
    const isUnder = (descendant: Tracer.NativeSpan, ancestor: Tracer.NativeSpan) => {
      let at: Tracer.AnySpan | undefined = descendant
      while (at !== undefined && at.spanId !== ancestor.spanId) {
        const parentId: string | undefined = at._tag === "Span" ? Option.getOrUndefined(at.parent)?.spanId : undefined
        at = trace.find((span) => span.spanId === parentId)
      }
      expect(at, `${descendant.name} is under ${ancestor.name}`).toBeDefined()
    }
    const send = one("Chat.send")
    expect(parentOf(send)).toBe(frame!.spanId)
    const publish = one("Chat.publish")
    expect(parentOf(publish)).toBe(send.spanId)
    expect(publish.attributes.get("server_id")).toBe(serverId)
    // Across the bus: the record's headers carried the publisher's span.
    const batch = one("Consumer.handleBatch")
    expect(parentOf(batch)).toBe(publish.spanId)
    expect(batch.kind).toBe("consumer")
    isUnder(one("Db.save"), batch)
    const push = one("Pusher.push")
    isUnder(push, batch)
    isUnder(one("Gateway.deliver"), push)
  })

  it("GET /metrics: Prometheus text with the message counted at each step", async () => {
    const response = await fetch(`${base}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
    const lines = (await response.text()).split("\n")
    for (
      const expected of [
        "im_chat_accepted_total{kind=\"single\"} 1",
        "im_bus_published_total{topic=\"im.messages\"} 1",
        "im_gateway_frames_received_total{type=\"send\"} 1",
        "im_consumer_records_total{topic=\"im.messages\"} 1",
        "im_consumer_batches_total{topic=\"im.messages\",outcome=\"ok\"} 1",
        "im_consumer_batch_size_count{topic=\"im.messages\"} 1",
        // One step, each of its phases timed once but the lookup of stored entries (no call failed).
        "im_consumer_step_duration_seconds_count{phase=\"seqs\"} 1",
        "im_consumer_step_duration_seconds_count{phase=\"save\"} 1",
        "im_consumer_step_duration_seconds_count{phase=\"push\"} 1",
        // The receiver's entry and the sender's own.
        "im_inbox_entries_stored_total 2",
        "im_pusher_deliveries_total{outcome=\"sent\"} 2",
        "im_gateway_deliveries_total{outcome=\"delivered\"} 2",
        "im_http_requests_total{method=\"POST\",route=\"/auth/login\",status=\"200\"} 2",
        "im_http_requests_total{method=\"POST\",route=\"/auth/register\",status=\"201\"} 2",
        "# TYPE im_chat_send_duration_seconds histogram",
        "# TYPE im_gateway_connections gauge"
      ]
    ) expect(lines).toContain(expected)
    expect(lines.filter((line) => /^im_consumer_step_duration_seconds_count\{phase="existing"\} [1-9]/.test(line))).toEqual([])
    expect(lines.some((line) => line.startsWith("im_consumer_lag{topic=\"im.messages\",group=\"im-consumer\"} "))).toBe(true)
    expect(lines.some((line) => line.startsWith("im_consumer_lag{topic=\"im.fanout\",group=\"im-consumer.fanout\"} "))).toBe(true)
    expect(lines.some((line) => /^im_chat_send_duration_seconds_bucket\{le="\+Inf"\} 1$/.test(line))).toBe(true)
  })
})
