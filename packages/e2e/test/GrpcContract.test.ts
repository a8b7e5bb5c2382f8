import * as grpc from "@grpc/grpc-js"
import * as protoLoader from "@grpc/proto-loader"
import { Db } from "@im/db/Db"
import { DbGrpcServer } from "@im/db/DbGrpc"
import { GatewayId } from "@im/domain/Ids"
import { Gateway, type Session } from "@im/gateway/Gateway"
import { GatewayGrpcServer } from "@im/gateway/GatewayGrpc"
import { ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { Presence } from "@im/ports/Presence"
import { GrpcServer, serve } from "@im/proto/Grpc"
import { Pusher } from "@im/pusher/Pusher"
import { PusherGrpcServer } from "@im/pusher/PusherGrpc"
import { Context, Duration, Effect, Layer, ManagedRuntime } from "effect"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

/**
 * Each service boundary of proto/ called by a plain @grpc/grpc-js client that loads the .proto
 * files at run time: the wire contract holds for any gRPC client, not only ours. (ChatService
 * has the same test in packages/chat.)
 */
const protoRoot = fileURLToPath(new URL("../../../proto", import.meta.url))
const load = (file: string) =>
  grpc.loadPackageDefinition(protoLoader.loadSync(file, { includeDirs: [protoRoot], keepCase: true, longs: String, defaults: true })) as any

const call = (client: any, method: string, request: object) =>
  new Promise<any>((resolve, reject) => client[method](request, (error: any, response: any) => (error ? reject(error) : resolve(response))))

const message = {
  server_id: "m_1",
  local_id: "l_1",
  sender_id: "u_alice",
  kind: "single",
  receiver_id: "u_bob",
  group_id: "",
  content_type: "text",
  content: "over grpc-js",
  create_time: "1",
  send_time: "2"
}

const frames: Array<any> = []
const session: Session = { id: "s-1", user: "u_bob" as never, sid: "sn-1" as never, offer: (frame) => (frames.push(JSON.parse(frame)), true), close: () => Effect.void }

const Servers = Layer.effectContext(Effect.gen(function*() {
  const gateway = yield* Gateway.make({ id: GatewayId.make("gw-1"), heartbeatTimeout: Duration.seconds(60), sendTimeout: Duration.seconds(10), sendQueueCapacity: 10, dropMarkedPushes: false })
  yield* gateway.attach(session)
  const gatewayLayer = Layer.succeed(Gateway, gateway)
  const gatewayServer = yield* Layer.build(serve(GatewayGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(Layer.provide(gatewayLayer)))
  const dbServer = yield* Layer.build(serve(DbGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
    Layer.provide(Db.layer),
    Layer.provide([HistoryStore.layerMemory, InboxStore.layerMemory, ConversationStore.layerMemory])
  ))
  // The pusher here delivers to the one gateway of this test, whatever Presence says.
  const pushed: Array<unknown> = []
  const pusherServer = yield* Layer.build(serve(PusherGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
    Layer.provide(Layer.succeed(Pusher, Pusher.of({
      push: (deliveries) => Effect.sync(() => void pushed.push(...deliveries)),
      signal: () => Effect.void
    })))
  ))
  return Context.make(Ports, {
    gateway: Context.get(gatewayServer, GrpcServer).port,
    db: Context.get(dbServer, GrpcServer).port,
    pusher: Context.get(pusherServer, GrpcServer).port,
    pushed
  })
}).pipe(Effect.provide(Presence.layerMemory)))

class Ports extends Context.Service<Ports, { gateway: number; db: number; pusher: number; pushed: Array<unknown> }>()("test/Ports") {}

let runtime: ManagedRuntime.ManagedRuntime<Ports, unknown>
let ports: Ports["Service"]
beforeAll(async () => {
  runtime = ManagedRuntime.make(Servers)
  ports = await runtime.runPromise(Effect.service(Ports))
})
afterAll(() => runtime.dispose())

describe("a plain @grpc/grpc-js client, with proto/ loaded at run time", () => {
  it("calls DbService: Save, Existing, Newest, Pull, and gets INVALID_ARGUMENT for a bad range", async () => {
    const db = new (load("im/db/v1/db.proto").im.db.v1.DbService)(`127.0.0.1:${ports.db}`, grpc.credentials.createInsecure())
    await call(db, "Save", { messages: [message], entries: [{ user_id: "u_bob", seq: "1", server_id: "m_1" }] })
    expect((await call(db, "Existing", { keys: [{ user_id: "u_bob", server_id: "m_1" }] })).entries).toEqual([
      { user_id: "u_bob", seq: "1", server_id: "m_1" }
    ])
    expect(await call(db, "Newest", { user_id: "u_bob" })).toEqual({ seq: "1" })
    const page = await call(db, "Pull", { user_id: "u_bob", after: "0", limit: 10 })
    expect(page.entries.map((e: any) => [e.seq, e.message.content])).toEqual([["1", "over grpc-js"]])
    expect([page.through, page.has_more]).toEqual(["1", false])
    await expect(call(db, "Pull", { user_id: "u_bob", after: "0", limit: 0 })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    // A field that fails validation is INVALID_ARGUMENT naming it, never an internal error.
    await expect(call(db, "Newest", { user_id: "" })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining("user_id") })
    await expect(call(db, "Existing", { keys: [{ user_id: "u_bob", server_id: "" }] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    db.close()
  })

  it("calls PusherService: Push", async () => {
    const pusher = new (load("im/pusher/v1/pusher.proto").im.pusher.v1.PusherService)(`127.0.0.1:${ports.pusher}`, grpc.credentials.createInsecure())
    await call(pusher, "Push", { deliveries: [{ user_id: "u_bob", seq: "7", message }] })
    expect(ports.pushed).toMatchObject([{ user_id: "u_bob", seq: 7, message: { server_id: "m_1", content: "over grpc-js" } }])
    await expect(call(pusher, "Push", { deliveries: [{ user_id: "u_bob", seq: "7", message: { ...message, kind: "broadcast" } }] }))
      .rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    await expect(call(pusher, "Push", { deliveries: [{ user_id: "", seq: "7", message }] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    // A batch: the message once, for both its entries.
    ports.pushed.length = 0
    await call(pusher, "Push", { batch: { messages: [message], entries: [{ user_id: "u_bob", seq: "8", message_index: 0 }, { user_id: "u_alice", seq: "2", message_index: 0 }] } })
    expect(ports.pushed).toMatchObject([{ user_id: "u_bob", seq: 8, message: { server_id: "m_1" } }, { user_id: "u_alice", seq: 2, message: { server_id: "m_1" } }])
    await expect(call(pusher, "Push", { batch: { messages: [message], entries: [{ user_id: "u_bob", seq: "9", message_index: 1 }] } }))
      .rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining("message_index 1") })
    expect(ports.pushed).toHaveLength(2)
    pusher.close()
  })

  it("calls GatewayService: Deliver reaches the session, Kick closes it", async () => {
    const gateway = new (load("im/gateway/v1/gateway.proto").im.gateway.v1.GatewayService)(`127.0.0.1:${ports.gateway}`, grpc.credentials.createInsecure())
    await call(gateway, "Deliver", { deliveries: [{ user_id: "u_bob", seq: "3", message }] })
    expect(frames).toMatchObject([{ type: "message", seq: 3, message: { server_id: "m_1" } }])
    await call(gateway, "Deliver", { batch: { messages: [message], entries: [{ user_id: "u_bob", seq: "4", message_index: 0 }] } })
    expect(frames).toMatchObject([{ seq: 3 }, { type: "message", seq: 4, message: { server_id: "m_1", content: "over grpc-js" } }])
    // With a session id, only the sockets of that login session.
    expect(await call(gateway, "Kick", { user_id: "u_bob", reason: "logged out", session_id: "sn-other" })).toEqual({ closed: 0 })
    expect(await call(gateway, "Kick", { user_id: "u_bob", reason: "logged out", session_id: "sn-1" })).toEqual({ closed: 1 })
    expect(await call(gateway, "Kick", { user_id: "u_bob", reason: "logged out" })).toEqual({ closed: 1 })
    await expect(call(gateway, "Kick", { user_id: "", reason: "" })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT })
    gateway.close()
  })
})
