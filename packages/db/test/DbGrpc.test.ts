import { assert, layer } from "@effect/vitest"
import { ServerId } from "@im/domain/Ids"
import type { Message } from "@im/domain/Message"
import { ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { GrpcServer, serve } from "@im/proto/Grpc"
import { Context, Effect, Layer } from "effect"
import { Db } from "../src/Db.ts"
import { DbGrpcServer, layerGrpc } from "../src/DbGrpc.ts"

import { bob, message as fixture } from "./Fixtures.ts"

const message = (n: number) => fixture(n, 1_700_000_000_000 + n)

const Server = serve(DbGrpcServer, { host: "127.0.0.1", port: 0 }).pipe(
  Layer.provide(Db.layer),
  Layer.provide([HistoryStore.layerMemory, InboxStore.layerMemory, ConversationStore.layerMemory])
)

layer(Server)("db over gRPC", (it) => {
  it.effect("save, existing, newest and pull go through the wire unchanged; a bad range keeps its error", () =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const db = Context.get(yield* Layer.build(layerGrpc(`http://127.0.0.1:${port}`)), Db)
      const messages = [1, 2, 3].map(message)
      yield* db.save(messages, messages.map((m, i) => ({ user_id: bob, seq: i + 1, server_id: m.server_id })))
      const found = yield* db.existing([{ user_id: bob, server_id: ServerId.make("m_2") }, { user_id: bob, server_id: ServerId.make("m_9") }])
      assert.deepStrictEqual(found, [{ user_id: bob, seq: 2, server_id: ServerId.make("m_2") }])
      assert.strictEqual(yield* db.newest(bob), 3)
      const page = yield* db.pull({ user: bob, after: 0, limit: 2 })
      assert.deepStrictEqual(page, { entries: [{ seq: 1, message: messages[0]! }, { seq: 2, message: messages[1]! }], through: 2, has_more: true })
      const rest = yield* db.pull({ user: bob, after: 2, until: 3, limit: 10 })
      assert.deepStrictEqual(rest, { entries: [{ seq: 3, message: messages[2]! }], through: 3, has_more: false })
      const bad = yield* Effect.flip(db.pull({ user: bob, after: 0, limit: 0 }))
      assert.strictEqual(bad._tag, "InvalidRange")
    }))

  it.effect("a message that fails validation is refused and nothing is stored", () =>
    Effect.gen(function*() {
      const { port } = yield* GrpcServer
      const db = Context.get(yield* Layer.build(layerGrpc(`http://127.0.0.1:${port}`)), Db)
      const broken = { ...message(7), content_type: "hologram" } as unknown as Message
      const error = yield* Effect.flip(db.save([broken], [{ user_id: bob, seq: 7, server_id: broken.server_id }]))
      assert.strictEqual(error._tag, "ServiceUnavailable")
      assert.include(error.message, "invalid message")
      assert.deepStrictEqual(yield* db.existing([{ user_id: bob, server_id: broken.server_id }]), [])
    }))
})
