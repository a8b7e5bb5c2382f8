import { Tokens } from "@im/auth/Tokens"
import { FileRecords } from "@im/ports/FileRecords"
import { FriendStore } from "@im/ports/FriendStore"
import { GroupStore } from "@im/ports/GroupStore"
import { ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { InboxStore } from "@im/ports/InboxStore"
import { SeqStore } from "@im/ports/SeqStore"
import { SessionStore } from "@im/ports/SessionStore"
import { UserStore } from "@im/ports/UserStore"
import { ConfigProvider, Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { afterAll, beforeAll, expect, it } from "vitest"
import { makeStandalone } from "../src/Standalone.ts"

// The FriendStore the server is given, counting what reaches it: block checks should be served
// by the server's cache in front of it.
const friendStoreCalls = { blocking: 0, blockedBy: 0 }
const CountedFriendStore = Layer.effect(
  FriendStore,
  Effect.map(Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory), (inner) =>
    FriendStore.of({
      ...inner,
      blocking: (pairs) => Effect.andThen(Effect.sync(() => void friendStoreCalls.blocking++), inner.blocking(pairs)),
      blockedBy: (blockers) => Effect.andThen(Effect.sync(() => void friendStoreCalls.blockedBy++), inner.blockedBy(blockers))
    }))
)

let runtime: ManagedRuntime.ManagedRuntime<HttpServer.HttpServer, unknown>
let base = ""

beforeAll(async () => {
  const app = makeStandalone({
    storage: Layer.mergeAll(UserStore.layerMemory, GroupStore.layerMemory, HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, SessionStore.layerMemory, FileRecords.layerMemory, CountedFriendStore),
    tokens: Layer.succeed(Tokens, Tokens.make(Redacted.make("x".repeat(32)), Duration.hours(1))),
    listen: { port: 0, host: "127.0.0.1", maxFrameBytes: 65536 }
  }).pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ WS_TEST_HOOKS: "true" }))))
  runtime = ManagedRuntime.make(app)
  const server = await runtime.runPromise(Effect.service(HttpServer.HttpServer))
  const address = server.address as { port: number }
  base = `http://127.0.0.1:${address.port}`
}, 30_000)

afterAll(() => runtime.dispose())

const post = async (path: string, body: unknown) => {
  const response = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as any }
}

it("registers, logs in, sends and pulls", async () => {
  const a = await post("/auth/register", { account: "alice", password: "password1", name: "Alice" })
  expect(a.status).toBe(201)
  const b = await post("/auth/register", { account: "bob", password: "password2", name: "Bob" })
  const login = await post("/auth/login", { account: "alice", password: "password1" })
  expect(login.status).toBe(200)
  const ws = new WebSocket(`${base.replace("http", "ws")}/ws?token=${login.body.token}`)
  const frames: Array<any> = []
  await new Promise<void>((resolve, reject) => {
    ws.onmessage = (event) => {
      frames.push(JSON.parse(event.data))
      if (frames.some((f) => f.type === "message")) resolve()
    }
    ws.onerror = reject
    ws.onopen = () => ws.send(JSON.stringify({ type: "send", local_id: "l1", receiver_id: b.body.id, content_type: "text", content: "hi", create_time: Date.now() }))
  })
  expect(frames[0].type).toBe("welcome")
  expect(frames.find((f) => f.type === "send_result").ok).toBe(true)
  const pulled = await fetch(`${base}/inbox?after=0`, { headers: { authorization: `Bearer ${login.body.token}` } })
  const page = await pulled.json() as any
  expect(page.entries.map((e: any) => e.message.content)).toEqual(["hi"])
  ws.close()
})

it("one-to-one sends check blocks through the cache: the store is asked once for a receiver, and a block shows at the next send", async () => {
  const sender = await post("/auth/register", { account: "carol", password: "password3", name: "Carol" })
  const receiver = await post("/auth/register", { account: "dave", password: "password4", name: "Dave" })
  const senderLogin = await post("/auth/login", { account: "carol", password: "password3" })
  const receiverLogin = await post("/auth/login", { account: "dave", password: "password4" })
  const ws = new WebSocket(`${base.replace("http", "ws")}/ws?token=${senderLogin.body.token}`)
  const results = new Map<string, any>()
  const waiting = new Map<string, (result: any) => void>()
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data)
    if (frame.type !== "send_result") return
    results.set(frame.local_id, frame)
    waiting.get(frame.local_id)?.(frame)
  }
  await new Promise((resolve, reject) => {
    ws.onopen = resolve
    ws.onerror = reject
  })
  const send = (localId: string) =>
    new Promise<any>((resolve) => {
      waiting.set(localId, resolve)
      ws.send(JSON.stringify({ type: "send", local_id: localId, receiver_id: receiver.body.id, content_type: "text", content: localId, create_time: Date.now() }))
    })
  const before = { ...friendStoreCalls }
  for (const localId of ["c1", "c2", "c3"]) expect((await send(localId)).ok).toBe(true)
  expect(friendStoreCalls.blocking - before.blocking).toBe(0)
  expect(friendStoreCalls.blockedBy - before.blockedBy).toBe(1)

  const blocked = await fetch(`${base}/friends/${sender.body.id}/block`, {
    method: "POST",
    headers: { authorization: `Bearer ${receiverLogin.body.token}` }
  })
  expect(blocked.status).toBe(204)
  expect(await send("c4")).toMatchObject({ ok: false, error: { code: "blocked" } })
  ws.close()
})
