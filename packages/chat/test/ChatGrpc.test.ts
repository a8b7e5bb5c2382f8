import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { assert, describe, it, layer } from "@effect/vitest"
import { LocalId, UserId } from "@im/domain/Ids"
import { SendRejected } from "@im/domain/Errors"
import { Code, type ConnectError, toConnectError } from "@im/proto/Errors"
import { type EffectImpl, GrpcServer, implement, serve } from "@im/proto/Grpc"
import { ChatService } from "@im/proto/gen/im/chat/v1/chat_pb"
import { FriendStore } from "@im/ports/FriendStore"
import { GroupStore } from "@im/ports/GroupStore"
import { MessageBus } from "@im/ports/MessageBus"
import { ServiceRegistry } from "@im/ports/ServiceRegistry"
import { UserStore } from "@im/ports/UserStore"
import { recordingPusher } from "@im/pusher/testing/RecordingPusher"
import * as Metrics from "@im/observability/Metrics"
import { recordingTracer } from "@im/observability/testing/RecordingTracer"
import { Context, type Duration, Effect, Exit, Layer, Metric, Option, Scope } from "effect"
import { fileURLToPath } from "node:url"
import { Chat, serverIdOf } from "../src/Chat.ts"
import { ChatGrpcServer, layerGrpc, layerRegistry } from "../src/ChatGrpc.ts"
import { FileMessages } from "../src/FileMessages.ts"

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")

const Users = Layer.effect(
  UserStore,
  Effect.gen(function*() {
    const users = yield* Effect.provide(Effect.service(UserStore), UserStore.layerMemory)
    for (const id of [alice, bob]) yield* users.create({ id, account: id, name: id, created_at: 0, password_hash: "x" })
    return users
  })
)

/** The chat service served over gRPC on a free port, on the in-memory bus. */
const Server = serve(ChatGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
  Layer.provide(Chat.layer),
  Layer.provide([MessageBus.layerMemory(), Users, GroupStore.layerMemory, FriendStore.layerMemory, FileMessages.layerMemory, recordingPusher().layer])
)


/** `im_errors_total{service="ws",kind="chat_unreachable"}`: sends' calls that did not reach chat. */
const unreachableCount = Effect.map(Metric.value(Metrics.errors({ service: "ws", kind: "chat_unreachable" })), (state) => state.count)

const protoRoot = fileURLToPath(new URL("../../../proto", import.meta.url))

layer(Server)("chat over gRPC", (it) => {
  it.effect("an Effect client sends through the wire and gets the same ack; refusals keep their code", () =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const chat = Context.get(yield* Layer.build(layerGrpc(`http://127.0.0.1:${port}`)), Chat)
      const request = { sender_id: alice, local_id: LocalId.make("l-1"), receiver_id: bob, content_type: "text" as const, content: "hi", create_time: 1 }
      const ack = yield* chat.send(request)
      assert.strictEqual(ack.server_id, serverIdOf(alice, LocalId.make("l-1")))
      assert.deepStrictEqual(yield* chat.send(request), ack)
      const refused = yield* Effect.flip(chat.send({ ...request, local_id: LocalId.make("l-2"), receiver_id: UserId.make("u_nobody") }))
      assert.strictEqual(refused.code, "receiver_not_found")
      const invalid = yield* Effect.flip(chat.send({ ...request, content_type: "hologram" as never }))
      assert.strictEqual(invalid.code, "invalid_frame")
      const noFile = yield* Effect.flip(chat.send({ ...request, local_id: LocalId.make("l-3"), content_type: "image" as const, content: "{}" }))
      assert.strictEqual(noFile.code, "invalid_file")
      const notice = yield* chat.notify({ sender_id: alice, to: [bob], event_id: "e-1", event: { type: "friend_request" } })
      assert.strictEqual(notice.server_id, serverIdOf(alice, LocalId.make("n:e-1")))
      const badNotice = yield* Effect.flip(chat.notify({ sender_id: alice, to: [bob], event_id: "e-2", event: { type: "Not A Type" } }))
      assert.strictEqual(badNotice.code, "invalid_frame")
    }))

  it.effect("sends made together go in one SendBatch call, each with its own result, in its own trace", () =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const chat = Context.get(yield* Layer.build(layerGrpc(`http://127.0.0.1:${port}`)), Chat)
      const { recording, spans } = recordingTracer()
      // Twenty sends at once; every fifth one to a user that does not exist.
      const results = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) =>
          Effect.exit(chat.send({
            sender_id: alice,
            local_id: LocalId.make(`batch-${i}`),
            receiver_id: i % 5 === 0 ? UserId.make("u_nobody") : bob,
            content_type: "text",
            content: `#${i}`,
            create_time: 1
          })),
        { concurrency: "unbounded" }
      ).pipe(Effect.withTracer(recording))
      results.forEach((result, i) => {
        if (i % 5 === 0) {
          assert.isTrue(Exit.isFailure(result))
          assert.strictEqual(Exit.isFailure(result) && Option.getOrThrow(Exit.findErrorOption(result)).code, "receiver_not_found")
        } else {
          assert.strictEqual(Exit.isSuccess(result) && result.value.server_id, serverIdOf(alice, LocalId.make(`batch-${i}`)))
        }
      })
      const calls = spans.filter((span) => span.name === "grpc.client im.chat.v1.ChatService/sendBatch")
      assert.strictEqual(calls.length, 1)
      // Each send has its own client span, and its own trace.
      const own = spans.filter((span) => span.name === "ChatGrpc.send")
      assert.strictEqual(own.length, 20)
      assert.strictEqual(new Set(own.map((span) => span.traceId)).size, 20)
    }))

  it.effect("SendBatch from a plain @grpc/grpc-js client: results in order, a refusal in its place; an empty batch is INVALID_ARGUMENT", () =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const definition = protoLoader.loadSync("im/chat/v1/chat.proto", { includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true, oneofs: true })
      const pkg = grpc.loadPackageDefinition(definition) as any
      const client = new pkg.im.chat.v1.ChatService(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
      const call = (request: object) =>
        Effect.callback<any, any>((resume) => {
          client.SendBatch(request, (error: any, response: any) => resume(error ? Effect.fail(error) : Effect.succeed(response)))
        })
      const send = (localId: string, receiver: string) => ({
        sender_id: "u_bob",
        local_id: localId,
        receiver_id: receiver,
        content_type: "text",
        content: "batched",
        create_time: "5"
      })
      const response = yield* call({ sends: [send("sb-1", "u_alice"), send("sb-2", "u_nobody"), send("sb-3", "u_alice")] })
      assert.deepStrictEqual(response.results.map((result: any) => result.outcome), ["accepted", "rejected", "accepted"])
      assert.strictEqual(response.results[0].accepted.server_id, serverIdOf(bob, LocalId.make("sb-1")))
      assert.strictEqual(response.results[2].accepted.server_id, serverIdOf(bob, LocalId.make("sb-3")))
      assert.deepStrictEqual(
        { tag: response.results[1].rejected.tag, code: response.results[1].rejected.code },
        { tag: "SendRejected", code: "receiver_not_found" }
      )
      const empty = yield* Effect.flip(call({ sends: [] }))
      assert.strictEqual(empty.code, grpc.status.INVALID_ARGUMENT)
      client.close()
    }))

  it.effect("a plain @grpc/grpc-js client, loading proto/ at run time, calls ChatService/Send", () =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const definition = protoLoader.loadSync("im/chat/v1/chat.proto", { includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true })
      const pkg = grpc.loadPackageDefinition(definition) as any
      const client = new pkg.im.chat.v1.ChatService(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
      const call = (request: object) =>
        Effect.callback<any, any>((resume) => {
          client.Send(request, (error: any, response: any) => resume(error ? Effect.fail(error) : Effect.succeed(response)))
        })
      const response = yield* call({ sender_id: "u_bob", local_id: "g-1", receiver_id: "u_alice", content_type: "text", content: "from grpc-js", create_time: "5" })
      assert.strictEqual(response.server_id, serverIdOf(bob, LocalId.make("g-1")))
      assert.match(response.send_time, /^\d+$/)
      const error = yield* Effect.flip(call({ sender_id: "u_bob", local_id: "g-2", receiver_id: "u_nobody", content_type: "text", content: "x", create_time: "5" }))
      assert.strictEqual(error.code, grpc.status.NOT_FOUND)
      client.close()
    }))
})

/** A chat client of a ChatService that answers every SendBatch with `sendBatch` (its other calls are unused). */
const clientOfFakeChat = (sendBatch: EffectImpl<typeof ChatService, SendRejected | ConnectError, never>["sendBatch"]) =>
  Effect.gen(function*() {
    const fake = implement<typeof ChatService, SendRejected, never, never, never>(
      ChatService,
      Effect.succeed({ send: () => Effect.die("unused"), notify: () => Effect.die("unused"), typing: () => Effect.die("unused"), sendBatch }),
      { toConnectError: (error: SendRejected) => toConnectError(Code.Unavailable, { tag: error._tag, code: error.code, message: error.message }) }
    )
    const server = yield* Layer.build(serve(fake, { host: "127.0.0.1", port: 0 }))
    return Context.get(yield* Layer.build(layerGrpc(`http://127.0.0.1:${Context.get(server, GrpcServer).port}`)), Chat)
  })

describe("chat client against a chat that answers wrongly or refuses", () => {
  it.live("a SendBatch answer without one result per send fails every send of it as `unavailable`", () =>
    Effect.gen(function*() {
      const chat = yield* clientOfFakeChat(() =>
        Effect.succeed({ results: [{ outcome: { case: "accepted" as const, value: { serverId: "m_x", sendTime: 1n } } }] })
      )
      const before = yield* unreachableCount
      const results = yield* Effect.forEach(
        [1, 2, 3],
        (i) => Effect.flip(chat.send({ sender_id: alice, local_id: LocalId.make(`w-${i}`), receiver_id: bob, content_type: "text", content: "x", create_time: 1 })),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results.map((error) => error.code), ["unavailable", "unavailable", "unavailable"])
      assert.strictEqual((yield* unreachableCount) - before, 0, "chat answered: it was reached")
    }))

  it.live("a batch chat refuses as a whole (its own bus down) is `unavailable`, and chat was reached: not counted as chat_unreachable", () =>
    Effect.gen(function*() {
      const chat = yield* clientOfFakeChat(() => Effect.fail(new SendRejected({ code: "unavailable", message: "the bus is down" })))
      const before = yield* unreachableCount
      const error = yield* Effect.flip(chat.send({ sender_id: alice, local_id: LocalId.make("d"), receiver_id: bob, content_type: "text", content: "x", create_time: 1 }))
      assert.deepStrictEqual([error.code, error.message], ["unavailable", "the bus is down"])
      assert.strictEqual((yield* unreachableCount) - before, 0)
    }))
})

describe("chat client without a server", () => {
  it.live("a send to an unreachable chat is `unavailable`, and counted as chat_unreachable", () =>
    Effect.gen(function*() {
      const chat = Context.get(yield* Layer.build(layerGrpc("http://127.0.0.1:1", { timeoutMs: 2_000 })), Chat)
      const before = yield* unreachableCount
      const error = yield* Effect.flip(chat.send({ sender_id: alice, local_id: LocalId.make("l"), receiver_id: bob, content_type: "text", content: "x", create_time: 1 }))
      assert.strictEqual(error.code, "unavailable")
      assert.strictEqual((yield* unreachableCount) - before, 1)
    }))
})

describe("chat found through the registry", () => {
  it.live("uses every registered instance, stops using one that left, and is `unavailable` with none", () =>
    Effect.gen(function*() {
      const registry = yield* ServiceRegistry
      const served: Array<string> = []
      const startChat = (name: string, scope: Scope.Scope) =>
        Effect.gen(function*() {
          // Each instance's bus records which instance published.
          const bus = Layer.succeed(MessageBus, MessageBus.of({
            publish: () => Effect.sync(() => void served.push(name)),
            consume: () => Effect.never,
            lag: () => Effect.succeed(0)
          }))
          const context = yield* Layer.build(serve(ChatGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
            Layer.provide(Chat.layer),
            Layer.provide([bus, Users, GroupStore.layerMemory, FriendStore.layerMemory, FileMessages.layerMemory, recordingPusher().layer])
          ))
          yield* registry.register({ id: name, service: "chat", host: "127.0.0.1", port: Context.get(context, GrpcServer).port })
        }).pipe(Scope.provide(scope))
      const one = yield* Scope.make()
      const two = yield* Scope.make()
      yield* startChat("chat-1", one)
      yield* startChat("chat-2", two)
      const chat = Context.get(yield* Layer.build(layerRegistry()), Chat)
      yield* Effect.sleep("50 millis")
      const send = (n: number) =>
        chat.send({ sender_id: alice, local_id: LocalId.make(`r-${n}`), receiver_id: bob, content_type: "text", content: "x", create_time: 1 })
      for (const n of [1, 2, 3, 4]) yield* send(n)
      assert.deepStrictEqual([...served].sort(), ["chat-1", "chat-1", "chat-2", "chat-2"])
      yield* Scope.close(two, Exit.void)
      yield* Effect.sleep("50 millis")
      served.length = 0
      for (const n of [5, 6, 7]) yield* send(n)
      assert.deepStrictEqual(served, ["chat-1", "chat-1", "chat-1"])
      yield* Scope.close(one, Exit.void)
      yield* Effect.sleep("50 millis")
      assert.strictEqual((yield* Effect.flip(send(8))).code, "unavailable")
    }).pipe(Effect.scoped, Effect.provide(ServiceRegistry.layerMemory)), 20_000)
})

layer(Server, { excludeTestServices: true })("chat over gRPC with a send linger", (it) => {
  /** Sends `count` messages `gap` ms apart through `chat`; how many SendBatch calls carried them. */
  const callsFor = (sendLinger: Duration.Input | undefined, count: number, gap: number) =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const chat = Context.get(
        yield* Layer.build(layerGrpc(`http://127.0.0.1:${port}`, sendLinger === undefined ? {} : { sendLinger })),
        Chat
      )
      const { recording, spans } = recordingTracer()
      const acks = yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => i),
        (i) =>
          Effect.sleep(i * gap).pipe(Effect.andThen(chat.send({
            sender_id: alice,
            local_id: LocalId.make(`linger-${sendLinger}-${i}`),
            receiver_id: bob,
            content_type: "text",
            content: `#${i}`,
            create_time: 1
          }))),
        { concurrency: "unbounded" }
      ).pipe(Effect.withTracer(recording))
      acks.forEach((ack, i) => assert.strictEqual(ack.server_id, serverIdOf(alice, LocalId.make(`linger-${sendLinger}-${i}`))))
      return spans.filter((span) => span.name === "grpc.client im.chat.v1.ChatService/sendBatch").length
    }).pipe(Effect.scoped)

  it.effect("sends within the linger of the first share its call; without one, sends 20 ms apart do not", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* callsFor("200 millis", 4, 20), 1)
      // Without a linger each goes in the tick it is made (two may share one if the process stalls).
      assert.isAbove(yield* callsFor(undefined, 4, 20), 1)
    }))
})
