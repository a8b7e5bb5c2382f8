import { type ReceivedSpan, renderTrace } from "@im/observability/testing/OtlpReceiver"
import { expect } from "vitest"

/**
 * What "one trace follows a message" means, checked on the spans the services exported (OTLP):
 * used on the cluster's spans by Tracing.e2e.test.ts, and on an in-process wiring of the same
 * services by MessageTrace.test.ts (which shows the check itself works).
 */

/** The exported spans whose JSON mentions `text` (a server_id, a trace or span id). */
export type SpanSearch = (text: string) => ReadonlyArray<ReceivedSpan>

export interface MessageTrace {
  /** The trace the ws frame started: frame → chat → publish. */
  readonly trace: ReadonlyArray<ReceivedSpan>
  readonly publish: ReceivedSpan
  /** The consumer's span of the batch that held the message, and its trace (db, pusher, gateways). */
  readonly batch: ReceivedSpan
  readonly below: ReadonlyArray<ReceivedSpan>
}

/** ws → chat: each send's own span on both sides (the call, SendBatch, carries many sends). */
const chatSend = "ChatGrpc.send"

const method = {
  save: "im.db.v1.DbService/save",
  push: "im.pusher.v1.PusherService/push",
  deliver: "im.gateway.v1.GatewayService/deliver"
}

const has = (spans: ReadonlyArray<ReceivedSpan>, names: ReadonlyArray<string>) =>
  names.every((name) => spans.some((span) => span.name === name))

/**
 * The spans of message `serverId`, once every part has arrived (each process exports on its
 * own schedule), else undefined. The publisher's span names the message. Under load a batch
 * holds several messages: its span continues the first one's trace and links to the others',
 * so the batch is found by parent or by link.
 */
export const findMessageTrace = (search: SpanSearch, serverId: string): MessageTrace | undefined => {
  const publish = search(serverId).find((span) => span.name === "Chat.publish" && span.attributes["server_id"] === serverId)
  if (publish === undefined) return undefined
  const trace = search(publish.traceId).filter((span) => span.traceId === publish.traceId)
  if (!has(trace, ["Gateway.sendFrame", chatSend, "Chat.send"])) return undefined
  const batches = search(publish.spanId).filter((span) =>
    span.name === "Consumer.handleBatch" &&
    (span.parentSpanId === publish.spanId || span.links.some((link) => link.spanId === publish.spanId))
  )
  const wanted = [method.save, method.push, method.deliver].flatMap((name) => [`grpc.client ${name}`, `grpc.server ${name}`])
  for (const batch of batches) {
    const below = search(batch.traceId).filter((span) => span.traceId === batch.traceId)
    if (has(below, [...wanted, "Db.save", "Pusher.push", "Gateway.deliver"])) return { trace, publish, batch, below }
  }
  return undefined
}

/** Waits (polling) up to `timeoutMs` for the spans of message `serverId`. */
export const awaitMessageTrace = async (search: SpanSearch, serverId: string, timeoutMs = 15_000): Promise<MessageTrace> => {
  const deadline = Date.now() + timeoutMs
  let found = findMessageTrace(search, serverId)
  while (found === undefined && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    found = findMessageTrace(search, serverId)
  }
  expect(found, `the spans of ${serverId} were exported within ${timeoutMs} ms`).toBeDefined()
  return found!
}

/**
 * The parent links across the processes: ws frame (the root) → gRPC → chat → publish; bus →
 * the consumer's batch; batch → gRPC → db; batch → gRPC → pusher → gRPC → the gateways.
 */
export const checkMessageTrace = ({ batch, below, publish, trace }: MessageTrace) => {
  const all = new Map([...trace, ...below].map((span) => [span.spanId, span]))
  const explain = [renderTrace(trace, publish.traceId), batch.traceId === publish.traceId ? "" : renderTrace(below, batch.traceId)].join("\n")
  const parentOf = (span: ReceivedSpan | undefined) => span?.parentSpanId === undefined ? undefined : all.get(span.parentSpanId)
  const ancestors = (span: ReceivedSpan): Array<ReceivedSpan> => {
    const chain: Array<ReceivedSpan> = []
    for (let at = parentOf(span); at !== undefined; at = parentOf(at)) chain.push(at)
    return chain
  }

  // ws frame → (gRPC, SendBatch) chat → publish: one trace, rooted at the gateway's frame span.
  const chain = ancestors(publish)
  const root = chain.at(-1)
  expect(root?.name, explain).toBe("Gateway.sendFrame")
  expect(root?.service, explain).toBe("im-ws")
  expect(root?.parentSpanId, explain).toBeUndefined()
  expect(chain.some((span) => span.name === "Chat.send" && span.service === "im-chat"), explain).toBe(true)
  const chatServer = chain.find((span) => span.name === chatSend && span.service === "im-chat")
  expect(chatServer, explain).toBeDefined()
  expect(parentOf(chatServer)?.name, explain).toBe(chatSend)
  expect(parentOf(chatServer)?.service, explain).toBe("im-ws")

  // bus → the consumer's batch: the batch continues this trace, or (not first in its batch) links to it.
  expect(batch.service, explain).toBe("im-consumer")
  if (batch.parentSpanId === publish.spanId) expect(batch.traceId, explain).toBe(publish.traceId)
  else expect(batch.links.map((link) => link.spanId), explain).toContain(publish.spanId)

  // Under the batch: → (gRPC) db, → (gRPC) pusher → (gRPC) the gateways holding the users.
  const isUnderBatch = (span: ReceivedSpan) => span.spanId === batch.spanId || ancestors(span).some((at) => at.spanId === batch.spanId)
  const served = (service: string, name: string, client: string) =>
    below.filter((span) =>
      span.service === service && span.name === `grpc.server ${name}` && isUnderBatch(span) &&
      parentOf(span)?.name === `grpc.client ${name}` && parentOf(span)?.service === client
    )
  const saves = served("im-db", method.save, "im-consumer")
  expect(saves.length, explain).toBeGreaterThan(0)
  expect(below.some((span) => span.name === "Db.save" && span.service === "im-db" && saves.includes(parentOf(span)!)), explain).toBe(true)
  const pushes = served("im-pusher", method.push, "im-consumer")
  expect(pushes.length, explain).toBeGreaterThan(0)
  expect(below.some((span) => span.name === "Pusher.push" && pushes.includes(parentOf(span)!)), explain).toBe(true)
  const deliveries = served("im-ws", method.deliver, "im-pusher")
  expect(deliveries.length, explain).toBeGreaterThan(0)
  expect(below.some((span) => span.name === "Gateway.deliver" && deliveries.includes(parentOf(span)!)), explain).toBe(true)
}
