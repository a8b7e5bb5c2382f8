import { assert, describe, it } from "@effect/vitest"
import { Sessions } from "@im/auth/Sessions"
import { Tokens } from "@im/auth/Tokens"
import { Chat } from "@im/chat/Chat"
import * as ChatGrpc from "@im/chat/ChatGrpc"
import { FileMessages } from "@im/chat/FileMessages"
import { Consumer } from "@im/consumer/Consumer"
import { Db } from "@im/db/Db"
import * as DbGrpc from "@im/db/DbGrpc"
import { GatewayId, UserId } from "@im/domain/Ids"
import { Gateway } from "@im/gateway/Gateway"
import { GatewayGrpcServer } from "@im/gateway/GatewayGrpc"
import { GatewayRoutes } from "@im/gateway/GatewayRoutes"
import * as HttpServerLayer from "@im/platform/HttpServer"
import * as Tracing from "@im/observability/Tracing"
import { OtlpReceiver, type ReceivedSpan, renderTrace, renderTraceSvg } from "@im/observability/testing/OtlpReceiver"
import { ConversationStore } from "@im/ports/ConversationStore"
import { FriendStore } from "@im/ports/FriendStore"
import { GroupStore } from "@im/ports/GroupStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { MessageBus } from "@im/ports/MessageBus"
import { Presence } from "@im/ports/Presence"
import { SeqStore } from "@im/ports/SeqStore"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { SessionStore } from "@im/ports/SessionStore"
import { UserStore } from "@im/ports/UserStore"
import { GrpcServer, serve } from "@im/proto/Grpc"
import { Gateways } from "@im/pusher/Gateways"
import { Pusher } from "@im/pusher/Pusher"
import * as PusherGrpc from "@im/pusher/PusherGrpc"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import { randomBytes, randomUUID } from "node:crypto"
import { writeFileSync } from "node:fs"
import { openRaw, sendFrame } from "./Raw.ts"
import { checkMessageTrace, findMessageTrace } from "./TraceCheck.ts"

/**
 * The cluster's path of a message, in one process: ws, chat, consumer, db and pusher wired to
 * each other over gRPC on 127.0.0.1 exactly as in the cluster (only the stores, the bus,
 * Presence and the registry are in memory), each with its own OTLP exporter and service name,
 * exporting to a small OTLP receiver. One message sent over a real WebSocket must come out as
 * one trace from the ws frame to the delivering gateway, with the parent links the services'
 * trace propagation (gRPC `traceparent`, bus record headers) gives.
 *
 * `IM_PRINT_TRACE=1` prints the trace as a tree, `IM_TRACE_SVG=<file>` draws it (that is how
 * docs/observability.md got its).
 */

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")
const local = { host: "127.0.0.1", port: 0 }
const urlOf = (context: Context.Context<GrpcServer>) => `http://127.0.0.1:${Context.get(context, GrpcServer).port}`

const Users = Layer.effect(
  UserStore,
  Effect.gen(function*() {
    const users = yield* Effect.provide(Effect.service(UserStore), UserStore.layerMemory)
    for (const id of [alice, bob]) yield* users.create({ id, account: id, name: id, created_at: 0, password_hash: "x" })
    return users
  })
)

/** What the cluster keeps in Kafka, Redis, PostgreSQL and Consul, here in memory and shared. */
const Infrastructure = Layer.mergeAll(
  MessageBus.layerMemory(),
  Presence.layerMemory,
  ServiceRegistry.layerMemory,
  Users,
  Sessions.layer.pipe(
    Layer.provide([
      Layer.succeed(Tokens, Tokens.make(Redacted.make(randomBytes(32).toString("hex")), Duration.hours(1))),
      SessionStore.layerMemory
    ])
  )
)

/** Waits until `found` holds for the spans received so far. */
const spansUntil = (receiver: OtlpReceiver, found: (spans: ReadonlyArray<ReceivedSpan>) => boolean) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 15_000
    while (!found(receiver.spans)) {
      if (Date.now() > deadline) return yield* Effect.die(new Error("the trace did not arrive within 15 s"))
      yield* Effect.sleep("50 millis")
    }
    return receiver.spans
  })

describe("one trace follows a message across the services", () => {
  it.live("ws frame → chat → bus → consumer → db, pusher → the delivering gateway: one trace id, parents across processes", () =>
    Effect.gen(function*() {
      const receiver = new OtlpReceiver()
      yield* Effect.acquireRelease(Effect.promise(() => receiver.start()), () => Effect.promise(() => receiver.stop()))
      const tracing = (service: string) =>
        Tracing.layerOtlp({
          url: `${receiver.url}/v1/traces`,
          serviceName: `im-${service}`,
          protocol: "http/json",
          headers: {},
          exportInterval: Duration.millis(50)
        })
      const infrastructure = Layer.succeedContext(yield* Layer.build(Infrastructure))

      const db = yield* Layer.build(
        serve(DbGrpc.DbGrpcServer, local).pipe(
          Layer.provide(Db.layer),
          Layer.provide([HistoryStore.layerMemory, InboxStore.layerMemory, ConversationStore.layerMemory]),
          Layer.provide(tracing("db"))
        )
      )
      const pusher = yield* Layer.build(
        serve(PusherGrpc.PusherGrpcServer, local).pipe(
          Layer.provide(Pusher.layer),
          Layer.provide(Gateways.layerRegistry()),
          Layer.provide(infrastructure),
          Layer.provide(tracing("pusher"))
        )
      )
      const chat = yield* Layer.build(
        serve(ChatGrpc.ChatGrpcServer, local).pipe(
          Layer.provide(Chat.layer),
          Layer.provide([FileMessages.layerMemory, GroupStore.layerMemory, FriendStore.layerMemory, PusherGrpc.layerGrpc(urlOf(pusher))]),
          Layer.provide(infrastructure),
          Layer.provide(tracing("chat"))
        )
      )
      const gateway = Layer.effect(
        Gateway,
        Gateway.make({ id: GatewayId.make("ws-1"), heartbeatTimeout: Duration.seconds(60), sendTimeout: Duration.seconds(10), sendQueueCapacity: 100, dropMarkedPushes: false })
      )
      const ws = yield* Layer.build(
        Layer.mergeAll(
          serve(GatewayGrpcServer, local),
          HttpRouter.serve(GatewayRoutes, { disableLogger: true, disableListenLog: true }).pipe(
            Layer.provideMerge(HttpServerLayer.layer(local))
          )
        ).pipe(
          Layer.provide(gateway),
          Layer.provide(ChatGrpc.layerGrpc(urlOf(chat))),
          Layer.provide(infrastructure),
          Layer.provide(tracing("ws"))
        )
      )
      const registry = Context.get(yield* Layer.build(infrastructure), ServiceRegistry)
      yield* registry.register({ id: "ws-1", service: "ws", host: "127.0.0.1", port: Context.get(ws, GrpcServer).port })
      yield* Layer.build(
        Consumer.layer.pipe(
          Layer.provide([DbGrpc.layerGrpc(urlOf(db)), PusherGrpc.layerGrpc(urlOf(pusher)), SeqStore.layerMemory, GroupStore.layerMemory]),
          Layer.provide(infrastructure),
          Layer.provide(tracing("consumer"))
        )
      )

      // Two users on the gateway, over real WebSockets.
      const sessions = Context.get(yield* Layer.build(infrastructure), Sessions)
      const { port } = Context.get(ws, HttpServer.HttpServer).address as { readonly port: number }
      const connect = (user: UserId) =>
        Effect.gen(function*() {
          const { token } = yield* sessions.start(user)
          const socket = yield* Effect.acquireRelease(
            Effect.promise(() => openRaw(`ws://127.0.0.1:${port}/ws?token=${token}`)),
            (socket) => Effect.sync(() => socket.close())
          )
          yield* Effect.promise(() => socket.next((frame) => frame.type === "welcome"))
          return socket
        })
      const a = yield* connect(alice)
      const b = yield* connect(bob)
      const send = (content: string, localId: string) =>
        Effect.gen(function*() {
          a.send(sendFrame(bob, content, localId))
          const result = yield* Effect.promise(() => a.next((frame) => frame.type === "send_result" && frame.local_id === localId))
          assert.isTrue(result.ok)
          const pushed = yield* Effect.promise(() => b.next((frame) => frame.type === "message"))
          assert.strictEqual(pushed.message.server_id, result.server_id)
          return result
        })
      // A first message opens the gRPC connections; once its batch is done, the traced one is
      // alone in its batch and shows the path when it is warm.
      const search = (text: string) => receiver.spans.filter((span) => JSON.stringify(span).includes(text))
      const warmUp = yield* send("warm up", randomUUID())
      yield* spansUntil(receiver, () => findMessageTrace(search, warmUp.server_id) !== undefined)
      const localId = randomUUID()
      const result = yield* send("trace me", localId)

      const frameSpan = (spans: ReadonlyArray<ReceivedSpan>) =>
        spans.find((span) => span.name === "Gateway.sendFrame" && span.attributes["local_id"] === localId)
      // Each service exports on its own schedule: wait for the last span of each one. The pusher's
      // spans can arrive after the gateway's and the consumer's.
      const lastOfEach = [
        ["im-ws", "Gateway.deliver"],
        ["im-consumer", "Consumer.handleBatch"],
        ["im-pusher", "grpc.server im.pusher.v1.PusherService/push"],
        ["im-db", "grpc.server im.db.v1.DbService/save"],
        ["im-chat", "ChatGrpc.send"]
      ] as const
      const spans = yield* spansUntil(receiver, (spans) => {
        const frame = frameSpan(spans)
        return frame !== undefined &&
          lastOfEach.every(([service, name]) =>
            spans.some((span) => span.traceId === frame.traceId && span.service === service && span.name === name)
          )
      })
      const frame = frameSpan(spans)!
      const trace = spans.filter((span) => span.traceId === frame.traceId)
      const rendered = renderTrace(spans, frame.traceId)
      if (process.env["IM_PRINT_TRACE"] !== undefined) console.log(rendered)
      const svg = process.env["IM_TRACE_SVG"]
      if (svg !== undefined && svg !== "") writeFileSync(svg, renderTraceSvg(spans, frame.traceId))

      /** The one span of the trace with this service and name. */
      const span = (service: string, name: string) => {
        const found = trace.filter((span) => span.service === `im-${service}` && span.name === name)
        assert.strictEqual(found.length, 1, `one ${name} in im-${service}:\n${rendered}`)
        return found[0]!
      }
      const byId = new Map(trace.map((span) => [span.spanId, span]))
      const isChildOf = (child: ReceivedSpan, parent: ReceivedSpan) =>
        assert.strictEqual(child.parentSpanId, parent.spanId, `${child.name} is a child of ${parent.name}:\n${rendered}`)
      const isUnder = (descendant: ReceivedSpan, ancestor: ReceivedSpan) => {
        let at: ReceivedSpan | undefined = descendant
        while (at !== undefined && at.spanId !== ancestor.spanId) at = at.parentSpanId === undefined ? undefined : byId.get(at.parentSpanId)
        assert.isDefined(at, `${descendant.name} is under ${ancestor.name}:\n${rendered}`)
      }

      // The ws frame starts the trace.
      assert.isUndefined(frame.parentSpanId)
      assert.strictEqual(frame.service, "im-ws")
      // ws → chat over gRPC: the send's own span on each side; the SendBatch call that carried
      // it is linked from chat's.
      const sendClient = span("ws", "ChatGrpc.send")
      isChildOf(sendClient, frame)
      const sendServer = span("chat", "ChatGrpc.send")
      isChildOf(sendServer, sendClient)
      const batchServer = spans.find((span) => span.name === "grpc.server im.chat.v1.ChatService/sendBatch" && sendServer.links.some((link) => link.spanId === span.spanId))
      assert.isDefined(batchServer, `chat's ChatGrpc.send links to its SendBatch call:\n${rendered}`)
      const chatSend = span("chat", "Chat.send")
      isUnder(chatSend, sendServer)
      const publish = span("chat", "Chat.publish")
      isUnder(publish, chatSend)
      assert.strictEqual(publish.attributes["server_id"], result.server_id)
      // chat → bus → consumer: the batch's span continues the publisher's.
      const batch = span("consumer", "Consumer.handleBatch")
      isChildOf(batch, publish)
      // consumer → db over gRPC.
      const saveClient = span("consumer", "grpc.client im.db.v1.DbService/save")
      isUnder(saveClient, batch)
      const saveServer = span("db", "grpc.server im.db.v1.DbService/save")
      isChildOf(saveServer, saveClient)
      isUnder(span("db", "Db.save"), saveServer)
      // consumer → pusher → the gateway holding the users, over gRPC.
      const pushClient = span("consumer", "grpc.client im.pusher.v1.PusherService/push")
      isUnder(pushClient, batch)
      const pushServer = span("pusher", "grpc.server im.pusher.v1.PusherService/push")
      isChildOf(pushServer, pushClient)
      const push = span("pusher", "Pusher.push")
      isUnder(push, pushServer)
      const deliverClient = span("pusher", "grpc.client im.gateway.v1.GatewayService/deliver")
      isUnder(deliverClient, push)
      const deliverServer = span("ws", "grpc.server im.gateway.v1.GatewayService/deliver")
      isChildOf(deliverServer, deliverClient)
      isUnder(span("ws", "Gateway.deliver"), deliverServer)
      // Five services took part, each under its own name.
      assert.deepStrictEqual(
        [...new Set(trace.map((span) => span.service))].sort(),
        ["im-chat", "im-consumer", "im-db", "im-pusher", "im-ws"]
      )
      // The check the cluster's tracing test makes on the spans its services export.
      const found = findMessageTrace(search, result.server_id)
      assert.isDefined(found)
      assert.strictEqual(found!.batch.spanId, batch.spanId)
      checkMessageTrace(found!)
    }).pipe(Effect.scoped), 30_000)
})
