import { describe, expect, it } from "vitest"
import {
  type ClientStatus,
  ConnectError,
  type Fetch,
  type FetchResponse,
  HttpError,
  ImClient,
  SendError,
  type SendResult,
  type WebSocketConstructor,
  type WebSocketLike
} from "../src/Client.ts"
import { MemoryLocalStore } from "../src/LocalStore.ts"
import type { ClientFrame, InboxEntry, Message, SendErrorCode, SendFrame, ServerFrame } from "../src/Wire.ts"
import { FakeClock, flush, type Listener } from "./Doubles.ts"

// Test doubles ---------------------------------------------------------------------------------

/** Both ends of one WebSocket; events are delivered asynchronously, as real sockets do. */
class FakeSocket implements WebSocketLike {
  readonly url: URL
  readonly fromClient: Array<ClientFrame> = []
  userId: string | undefined
  closed = false
  readonly #server: FakeServer
  readonly #listeners = new Map<string, Array<Listener>>()

  constructor(server: FakeServer, url: string) {
    this.#server = server
    this.url = new URL(url)
    server.accept(this)
  }

  addEventListener(type: "message" | "close" | "error", listener: Listener): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener])
  }

  send(data: string): void {
    if (this.closed) throw new Error("socket closed")
    const frame = JSON.parse(data) as ClientFrame
    this.fromClient.push(frame)
    queueMicrotask(() => this.#server.receive(this, frame))
  }

  close(code = 1000, reason = ""): void {
    this.serverClose(code, reason)
  }

  // The server's end.

  push(frame: ServerFrame): void {
    if (this.closed) return
    const data = JSON.stringify(frame)
    queueMicrotask(() => this.#dispatch("message", { data }))
  }

  serverClose(code: number, reason = ""): void {
    if (this.closed) return
    this.closed = true
    queueMicrotask(() => this.#dispatch("close", { code, reason }))
  }

  #dispatch(type: string, event: Parameters<Listener>[0]): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event)
  }
}

/**
 * What the server does with a send frame: accept it, refuse it with a code, or accept it and
 * lose the socket before the result (with or without the own entry pushed first).
 */
type SendBehaviour = "accept" | SendErrorCode | "accept-then-die" | "push-then-die"

/** The server of docs/protocol.md in memory, for one test. */
class FakeServer {
  readonly users = new Map<string, { readonly id: string; readonly account: string; readonly password: string }>()
  readonly tokens = new Map<string, string>()
  readonly inboxes = new Map<string, Array<InboxEntry>>()
  readonly sockets: Array<FakeSocket> = []
  readonly requests: Array<string> = []
  heartbeatTimeoutMs = 30_000
  /** When false, every socket is dropped (1006) before its welcome. */
  reachable = true
  /** When false, sockets open but never get a welcome. */
  welcomes = true
  /** When true, pings go unanswered (a connection dead without a close). */
  mute = false
  /** Entries stored without being pushed, to make gaps. */
  silent = false
  sendBehaviour: (frame: SendFrame, attempt: number) => SendBehaviour = () => "accept"
  /** Answers a pull in place of the inbox when it returns something. */
  /** The `ws_url` login answers with, if any (the cluster's gateways). */
  wsUrl: string | undefined = undefined
  interceptPull: (url: URL) => { readonly status: number; readonly body: unknown } | undefined = () => undefined
  readonly #attempts = new Map<string, number>()
  readonly #messages = new Map<string, Message>()

  readonly WebSocket: WebSocketConstructor
  readonly fetch: Fetch

  constructor() {
    const server = this
    this.WebSocket = class extends FakeSocket {
      constructor(url: string) {
        super(server, url)
      }
    }
    this.fetch = (url, init) => Promise.resolve(this.#http(new URL(url), init.method, init.headers, typeof init.body === "string" ? init.body : undefined))
  }

  addUser(account: string, password = "correct horse"): string {
    const id = `u_${account}`
    this.users.set(account, { id, account, password })
    this.inboxes.set(id, [])
    return id
  }

  tokenFor(userId: string): string {
    const token = `t_${userId}_${this.tokens.size}`
    this.tokens.set(token, userId)
    return token
  }

  /** A message from `from` to `to`, stored in both inboxes (pushed unless `silent`). */
  message(from: string, to: string, content: string, localId = `l_${this.#messages.size}`): Message {
    const server_id = `m_${from}_${localId}`
    const existing = this.#messages.get(server_id)
    if (existing !== undefined) return existing
    const message: Message = {
      server_id,
      local_id: localId,
      sender_id: from,
      kind: "single",
      receiver_id: to,
      content_type: "text",
      content,
      create_time: 1,
      send_time: 2
    }
    this.#messages.set(server_id, message)
    for (const user of new Set([to, from])) this.#append(user, message)
    return message
  }

  open(userId?: string): Array<FakeSocket> {
    return this.sockets.filter((socket) => !socket.closed && (userId === undefined || socket.userId === userId))
  }

  accept(socket: FakeSocket): void {
    this.sockets.push(socket)
    queueMicrotask(() => {
      const userId = this.tokens.get(socket.url.searchParams.get("token") ?? "")
      if (!this.reachable) return socket.serverClose(1006)
      if (userId === undefined) return socket.serverClose(4001, "invalid token")
      if (!this.welcomes) return
      socket.userId = userId
      socket.push({ type: "welcome", user_id: userId, heartbeat_timeout_ms: this.heartbeatTimeoutMs })
    })
  }

  receive(socket: FakeSocket, frame: ClientFrame): void {
    if (socket.closed) return
    if (frame.type === "ping") return this.mute ? undefined : socket.push({ type: "pong" })
    if (frame.type === "typing") return
    const attempt = (this.#attempts.get(frame.local_id) ?? 0) + 1
    this.#attempts.set(frame.local_id, attempt)
    const behaviour = this.sendBehaviour(frame, attempt)
    const sender = socket.userId!
    switch (behaviour) {
      case "accept": {
        const message = this.message(sender, frame.receiver_id!, frame.content, frame.local_id)
        return socket.push({
          type: "send_result",
          ok: true,
          local_id: frame.local_id,
          server_id: message.server_id,
          send_time: message.send_time
        })
      }
      case "accept-then-die": {
        socket.closed = true // nothing more reaches this socket
        this.message(sender, frame.receiver_id!, frame.content, frame.local_id)
        socket.closed = false
        return socket.serverClose(1006)
      }
      case "push-then-die": {
        this.message(sender, frame.receiver_id!, frame.content, frame.local_id)
        return socket.serverClose(1006)
      }
      default:
        return socket.push({
          type: "send_result",
          ok: false,
          local_id: frame.local_id,
          error: { code: behaviour, message: behaviour }
        })
    }
  }

  #append(user: string, message: Message): void {
    const inbox = this.inboxes.get(user)!
    const entry: InboxEntry = { seq: (inbox.at(-1)?.seq ?? 0) + 1, message }
    inbox.push(entry)
    if (!this.silent) for (const socket of this.open(user)) socket.push({ type: "message", ...entry })
  }

  #http(url: URL, method: string, headers: Record<string, string>, body: string | undefined): FetchResponse {
    const route = `${method} ${url.pathname}`
    this.requests.push(`${route}${url.search}`)
    const answer = (status: number, json: unknown): FetchResponse => ({
      ok: status < 400,
      status,
      json: () => Promise.resolve(json)
    })
    const input = body === undefined ? {} : (JSON.parse(body) as Record<string, string>)
    if (route === "POST /auth/register") {
      if (this.users.has(input["account"]!)) return answer(409, { _tag: "AccountTaken", message: "account taken" })
      const id = this.addUser(input["account"]!, input["password"]!)
      return answer(201, { id, account: input["account"], name: input["name"], created_at: 5 })
    }
    if (route === "POST /auth/login") {
      const user = this.users.get(input["account"]!)
      if (user === undefined || user.password !== input["password"]) {
        return answer(401, { _tag: "InvalidCredentials", message: "invalid credentials" })
      }
      return answer(200, {
        token: this.tokenFor(user.id),
        expires_at: 9,
        user: { id: user.id, account: user.account, name: user.account, created_at: 5 },
        ...(this.wsUrl === undefined ? {} : { ws_url: this.wsUrl })
      })
    }
    const userId = this.tokens.get((headers["authorization"] ?? "").replace(/^Bearer /, ""))
    if (userId === undefined) return answer(401, { _tag: "Unauthorized", message: "invalid token" })
    if (route === "GET /gateway") return answer(200, this.wsUrl === undefined ? {} : { ws_url: this.wsUrl })
    const inbox = this.inboxes.get(userId)!
    const newest = inbox.at(-1)?.seq ?? 0
    if (route === "GET /inbox/newest") return answer(200, { seq: newest })
    if (route === "GET /inbox") {
      const intercepted = this.interceptPull(url)
      if (intercepted !== undefined) return answer(intercepted.status, intercepted.body)
      const after = Number(url.searchParams.get("after"))
      const limit = Number(url.searchParams.get("limit"))
      const until = url.searchParams.get("until")
      const upTo = Math.min(until === null ? newest : Number(until), newest)
      const inRange = inbox.filter((entry) => entry.seq > after && entry.seq <= upTo)
      const entries = inRange.slice(0, limit)
      const has_more = inRange.length > limit
      return answer(200, { entries, through: has_more ? entries.at(-1)!.seq : Math.max(after, upTo), has_more })
    }
    return answer(404, { _tag: "NotFound", message: route })
  }
}

interface Setup {
  readonly server: FakeServer
  readonly clock: FakeClock
  readonly client: ImClient
  readonly store: MemoryLocalStore
  readonly statuses: Array<ClientStatus>
  readonly received: Array<InboxEntry>
  readonly results: Array<SendResult>
  readonly alice: string
  readonly bob: string
}

const setup = (options: { readonly token?: boolean; readonly maxSendAttempts?: number } = {}): Setup => {
  const server = new FakeServer()
  const clock = new FakeClock()
  const store = new MemoryLocalStore()
  const alice = server.addUser("alice")
  const bob = server.addUser("bob")
  let ids = 0
  const client = new ImClient({
    baseUrl: "http://im.test:8080/",
    store,
    fetch: server.fetch,
    WebSocket: server.WebSocket,
    timers: clock,
    random: () => 0.5,
    newLocalId: () => `local-${++ids}`,
    now: () => clock.now,
    pageLimit: 2,
    backoff: { initialDelayMs: 100, maxDelayMs: 1_000 },
    ...(options.maxSendAttempts !== undefined ? { maxSendAttempts: options.maxSendAttempts } : {}),
    ...(options.token === false ? {} : { token: server.tokenFor(alice) })
  })
  const statuses: Array<ClientStatus> = []
  const received: Array<InboxEntry> = []
  const results: Array<SendResult> = []
  client.on("status", (status) => statuses.push(status))
  client.on("message", (entry) => received.push(entry))
  client.on("sendResult", (result) => results.push(result))
  return { server, clock, client, store, statuses, received, results, alice, bob }
}

const connect = async (client: ImClient): Promise<void> => {
  const connected = client.connect()
  await flush()
  await connected
}

const contents = async (client: ImClient): Promise<Array<string>> =>
  (await client.messages()).map((entry) => entry.message.content)

const sendFrames = (server: FakeServer): Array<SendFrame> =>
  server.sockets.flatMap((socket) => socket.fromClient.filter((frame): frame is SendFrame => frame.type === "send"))

// Tests ----------------------------------------------------------------------------------------

describe("ImClient over HTTP", () => {
  it("registers, logs in and keeps the token", async () => {
    const { client, server } = setup({ token: false })
    const user = await client.register({ account: "carol", password: "correct horse", name: "Carol" })
    expect(user.id).toBe("u_carol")
    expect(client.token).toBeUndefined()

    const answer = await client.login("carol", "correct horse")
    expect(client.token).toBe(answer.token)
    expect(client.userId).toBe("u_carol")
    expect(server.tokens.get(answer.token)).toBe("u_carol")
    expect(await client.newestSeq()).toBe(0)
  })

  it("turns error answers into HttpError with the body's _tag", async () => {
    const { client } = setup({ token: false })
    const taken = await client.register({ account: "alice", password: "x", name: "A" }).catch((e: unknown) => e)
    expect(taken).toBeInstanceOf(HttpError)
    expect(taken).toMatchObject({ status: 409, tag: "AccountTaken" })
    await expect(client.login("alice", "wrong password")).rejects.toMatchObject({ status: 401, tag: "InvalidCredentials" })
    await expect(client.connect()).rejects.toBeInstanceOf(ConnectError)
  })

  it("pulls a page with after, limit and until", async () => {
    const { client, server, alice, bob } = setup()
    for (const n of [1, 2, 3, 4]) server.message(bob, alice, `m${n}`)
    const page = await client.pullPage({ after: 1, limit: 2, until: 4 })
    expect(page.entries.map((e) => e.seq)).toEqual([2, 3])
    expect(page).toMatchObject({ through: 3, has_more: true })
    expect(server.requests.at(-1)).toBe("GET /inbox?after=1&limit=2&until=4")
  })
})

describe("ImClient connect and sync", () => {
  it("opens ws://…/ws?token=…, waits for welcome, then pulls what it missed page by page", async () => {
    const { client, server, statuses, received, alice, bob } = setup()
    for (const n of [1, 2, 3, 4, 5]) server.message(bob, alice, `m${n}`)

    await connect(client)

    const socket = server.sockets[0]!
    expect(`${socket.url.origin}${socket.url.pathname}`).toBe("ws://im.test:8080/ws")
    expect(socket.url.searchParams.get("token")).toBe(client.token)
    expect(statuses).toEqual(["connecting", "open", "syncing", "synced"])
    expect(client.seq).toBe(5)
    expect(await contents(client)).toEqual(["m1", "m2", "m3", "m4", "m5"])
    expect(received.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    expect(server.requests.filter((r) => r.startsWith("GET /inbox?"))).toEqual([
      "GET /inbox?after=0&limit=2&until=5",
      "GET /inbox?after=2&limit=2&until=5",
      "GET /inbox?after=4&limit=2&until=5"
    ])
  })

  it("connects to the gateway login names in ws_url", async () => {
    const { client, server } = setup()
    server.wsUrl = "ws://gateway-2.im.test:8082/ws"
    await client.login("alice", "correct horse")
    await connect(client)
    const socket = server.sockets.at(-1)!
    expect(`${socket.url.origin}${socket.url.pathname}`).toBe("ws://gateway-2.im.test:8082/ws")
  })

  it("asks for a healthy gateway before reconnecting, when login named one", async () => {
    const { client, server, clock } = setup()
    server.wsUrl = "ws://gateway-1.im.test:8081/ws"
    await client.login("alice", "correct horse")
    await connect(client)
    server.wsUrl = "ws://gateway-2.im.test:8082/ws"
    server.open()[0]!.serverClose(1001, "server shutting down")
    await flush()
    await clock.advance(clock.timeouts.at(-1)!)
    expect(client.status).toBe("synced")
    const socket = server.sockets.at(-1)!
    expect(`${socket.url.origin}${socket.url.pathname}`).toBe("ws://gateway-2.im.test:8082/ws")
    expect(server.requests).toContain("GET /gateway")
  })

  it("stores pushed entries once and pulls the gap under a pushed entry", async () => {
    const { client, server, received, store, alice, bob } = setup()
    await connect(client)

    server.message(bob, alice, "one")
    await flush()
    server.silent = true
    server.message(bob, alice, "two") // never pushed
    server.silent = false
    server.message(bob, alice, "three")
    await flush()

    expect(await contents(client)).toEqual(["one", "two", "three"])
    expect(client.seq).toBe(3)
    expect(await store.getSeq()).toBe(3)
    expect(server.requests.at(-1)).toBe("GET /inbox?after=1&limit=2&until=2")

    const three = server.inboxes.get(alice)!.at(-1)!
    server.open(alice)[0]!.push({ type: "message", ...three }) // a duplicated push
    await flush()
    // One event per entry, as each got stored: "two" came with the gap's pull.
    expect(received.map((e) => e.message.content)).toEqual(["one", "three", "two"])
  })

  it("reconnects with backoff after the socket drops and pulls what came meanwhile", async () => {
    const { client, server, clock, statuses, alice, bob } = setup()
    await connect(client)
    server.open()[0]!.serverClose(1001, "server shutting down")
    await flush()
    expect(client.status).toBe("closed")

    server.message(bob, alice, "while away")
    expect(clock.timeouts.at(-1)).toBe(75) // 100 ms, jittered down by a half of half
    await clock.advance(75)

    expect(server.sockets).toHaveLength(2)
    expect(client.status).toBe("synced")
    expect(await contents(client)).toEqual(["while away"])
    expect(statuses).toEqual(["connecting", "open", "syncing", "synced", "closed", "connecting", "open", "syncing", "synced"])
  })

  it("backs off exponentially, capped, while the server is unreachable", async () => {
    const { client, server, clock } = setup()
    server.reachable = false
    const connected = client.connect()
    await flush()
    const reconnectDelays = () => clock.timeouts.filter((ms) => ms !== 10_000) // not the welcome timeouts
    for (let i = 0; i < 5; i++) await clock.advance(reconnectDelays().at(-1)!)
    // ceiling min(1000, 100·2^n), jittered to ceiling·(1/2 + 0.5/2)
    expect(reconnectDelays()).toEqual([75, 150, 300, 600, 750, 750])
    expect(server.sockets).toHaveLength(6)
    server.reachable = true
    await clock.advance(750)
    await connected
    expect(client.status).toBe("synced")
    expect(server.sockets).toHaveLength(7)
  })

  it("starts over on a new connection when a pull fails", async () => {
    const { client, server, clock, statuses, alice, bob } = setup()
    for (const n of [1, 2, 3]) server.message(bob, alice, `m${n}`)
    let failures = 1
    server.interceptPull = () => (failures-- > 0 ? { status: 503, body: { _tag: "Unavailable", message: "busy" } } : undefined)

    const connected = client.connect()
    await flush()
    expect(client.status).toBe("closed")
    expect(server.open()).toHaveLength(0)
    await clock.advance(75)
    await connected

    expect(await contents(client)).toEqual(["m1", "m2", "m3"])
    expect(statuses).toEqual(["connecting", "open", "syncing", "closed", "connecting", "open", "syncing", "synced"])
  })

  it("stops on a refused token during a pull", async () => {
    const { client, server, clock, alice, bob } = setup()
    server.message(bob, alice, "m1")
    server.interceptPull = () => ({ status: 401, body: { _tag: "Unauthorized", message: "expired token" } })
    await expect(client.connect()).rejects.toMatchObject({ reason: "unauthorized" })
    await clock.advance(60_000)
    expect(server.sockets).toHaveLength(1)
    expect(client.status).toBe("unauthorized")
  })

  it("pulls again later what an answer fell short of", async () => {
    const { client, server, clock, alice, bob } = setup()
    for (const n of [1, 2, 3]) server.message(bob, alice, `m${n}`)
    let short = true // the first answer stops at 1, as if 2 were not settled yet
    server.interceptPull = (url) => {
      if (!short) return undefined
      short = false
      expect(url.searchParams.get("after")).toBe("0")
      return { status: 200, body: { entries: [server.inboxes.get(alice)![0]], through: 1, has_more: false } }
    }
    const connected = client.connect()
    await flush()
    expect(client.status).toBe("syncing")
    expect(client.seq).toBe(1)

    await clock.advance(1_000) // gapRetryMs
    await connected
    expect(client.seq).toBe(3)
    expect(await contents(client)).toEqual(["m1", "m2", "m3"])
    expect(server.requests.filter((r) => r.startsWith("GET /inbox?")).at(-1)).toBe("GET /inbox?after=1&limit=2&until=3")
  })

  it("asks again, 2 s later, for a number an answer settled without an entry, and stores it if it came late", async () => {
    const { client, server, clock, alice, bob, received } = setup()
    for (const n of [1, 2, 3]) server.message(bob, alice, `m${n}`)
    const inbox = server.inboxes.get(alice)!
    let late = true // seq 2 is stored a moment after seq 3, by another consumer
    server.interceptPull = (url) => {
      if (!late) return undefined
      if (url.searchParams.get("after") === "0") {
        return { status: 200, body: { entries: [inbox[0]], through: 2, has_more: true } }
      }
      return { status: 200, body: { entries: [inbox[2]], through: 3, has_more: false } }
    }
    await connect(client)
    expect(await contents(client)).toEqual(["m1", "m3"])
    expect(client.seq).toBe(3)
    late = false
    await clock.advance(2_000)
    expect(await contents(client)).toEqual(["m1", "m2", "m3"])
    expect(received.map((e) => e.seq)).toEqual([1, 3, 2])
    expect(server.requests.filter((r) => r.startsWith("GET /inbox?")).at(-1)).toBe("GET /inbox?after=1&limit=2&until=2")
  })

  /** Alice's inbox m1..m3 where seq 2 is stored late: pulls answer without it while `late()`. */
  const lateSecond = (setupResult: ReturnType<typeof setup>, late: () => boolean) => {
    const { alice, bob, server } = setupResult
    for (const n of [1, 2, 3]) server.message(bob, alice, `m${n}`)
    const inbox = server.inboxes.get(alice)!
    server.interceptPull = (url) => {
      if (!late()) return undefined
      const after = Number(url.searchParams.get("after"))
      const until = Number(url.searchParams.get("until") ?? 3)
      const entries = inbox.filter((e) => e.seq > after && e.seq <= until && e.seq !== 2)
      return { status: 200, body: { entries, through: until, has_more: false } }
    }
    const rechecks = () => server.requests.filter((r) => r === "GET /inbox?after=1&limit=2&until=2").length
    return { rechecks }
  }

  it("asks again after 10 and 30 s while a number stays missing, then no more", async () => {
    const context = setup()
    const { client, clock } = context
    let late = true
    const { rechecks } = lateSecond(context, () => late)
    await connect(client)
    expect(await contents(client)).toEqual(["m1", "m3"])
    await clock.advance(2_000)
    expect(rechecks()).toBe(1)
    await clock.advance(10_000)
    expect(rechecks()).toBe(2)
    expect(await contents(client)).toEqual(["m1", "m3"])
    late = false // stored at last, 12 s after seq 3
    await clock.advance(30_000)
    expect(rechecks()).toBe(3)
    expect(await contents(client)).toEqual(["m1", "m2", "m3"])
    await clock.advance(120_000)
    expect(rechecks()).toBe(3)
  })

  it("gives up on a number still missing after the third re-check: it was skipped for good", async () => {
    const context = setup()
    const { client, clock } = context
    const { rechecks } = lateSecond(context, () => true)
    await connect(client)
    await clock.advance(2_000 + 10_000 + 30_000)
    expect(rechecks()).toBe(3)
    await clock.advance(300_000)
    expect(rechecks()).toBe(3)
    expect(await contents(client)).toEqual(["m1", "m3"])
  })

  it("a re-check outlives a lost connection: it waits for the next one, which syncs only above the local seq", async () => {
    const context = setup()
    const { client, clock, server } = context
    let late = true
    const { rechecks } = lateSecond(context, () => late)
    await connect(client)
    expect(client.seq).toBe(3)
    // The connection drops, and the server stays out of reach past the first re-check.
    server.reachable = false
    server.open()[0]!.serverClose(1006)
    await clock.advance(2_500)
    expect(client.status).not.toBe("synced")
    expect(rechecks()).toBe(0)
    late = false
    server.reachable = true
    await clock.advance(10_000)
    expect(client.status).toBe("synced")
    expect(rechecks()).toBe(1)
    expect(await contents(client)).toEqual(["m1", "m2", "m3"])
  })

  it("drops a socket that gets no welcome in time and tries again", async () => {
    const { client, server, clock } = setup()
    server.welcomes = false
    const connected = client.connect()
    await clock.advance(9_999)
    expect(client.status).toBe("connecting")
    await clock.advance(1)
    expect(client.status).toBe("closed")
    expect(server.sockets[0]!.closed).toBe(true)

    server.welcomes = true
    await clock.advance(75)
    await connected
    expect(server.sockets).toHaveLength(2)
  })

  it("reconnects when the server stays silent past its heartbeat timeout", async () => {
    const { client, server, clock } = setup()
    server.heartbeatTimeoutMs = 30_000
    await connect(client)
    await clock.advance(30_000)
    expect(server.sockets).toHaveLength(1) // pongs keep it alive

    server.mute = true
    await clock.advance(30_000) // three pings go unanswered: 30 s of silence is not yet too long
    expect(server.sockets[0]!.closed).toBe(false)
    await clock.advance(10_000) // 40 s after the last pong
    expect(server.sockets[0]!.closed).toBe(true)
    server.mute = false
    await clock.advance(75)
    expect(server.sockets).toHaveLength(2)
    expect(client.status).toBe("synced")
  })

  it("does not reconnect after close code 4001, and reports unauthorized", async () => {
    const { client, server, clock, statuses } = setup({ token: false })
    await client.login("alice", "correct horse")
    server.tokens.clear() // the token no longer holds

    await expect(client.connect()).rejects.toMatchObject({ reason: "unauthorized" })
    expect(statuses).toEqual(["connecting", "unauthorized"])
    await clock.advance(60_000)
    expect(server.sockets).toHaveLength(1)

    await client.login("alice", "correct horse")
    await connect(client)
    expect(client.status).toBe("synced")
  })

  it("pings every third of the heartbeat timeout from welcome, and stops when closed", async () => {
    const { client, server, clock } = setup()
    server.heartbeatTimeoutMs = 30_000
    await connect(client)
    const socket = server.sockets[0]!
    const pings = () => socket.fromClient.filter((frame) => frame.type === "ping").length

    await clock.advance(9_999)
    expect(pings()).toBe(0)
    await clock.advance(1)
    expect(pings()).toBe(1)
    await clock.advance(20_000)
    expect(pings()).toBe(3)

    client.close()
    await clock.advance(60_000)
    expect(pings()).toBe(3)
    expect(clock.pending).toBe(0)
    expect(client.status).toBe("closed")
  })
})

describe("ImClient send", () => {
  it("resolves with the server's id and stores its own entry once", async () => {
    const { client, received, results, alice, bob } = setup()
    await connect(client)

    const outcome = await client.send({ receiver_id: bob, content: "hi bob" })
    await flush()

    expect(outcome).toEqual({ local_id: "local-1", server_id: `m_${alice}_local-1`, send_time: 2 })
    expect(results).toEqual([{ ok: true, ...outcome }])
    expect(received.map((e) => e.message.server_id)).toEqual([outcome.server_id])
    expect(client.seq).toBe(1)
  })

  it("sends with the given local_id and content_type, and waits for a socket", async () => {
    const { client, server, bob } = setup()
    const sent = client.send({ receiver_id: bob, content: "ref", content_type: "image", local_id: "mine-1" })
    await flush()
    expect(sendFrames(server)).toEqual([])

    await connect(client)
    expect((await sent).local_id).toBe("mine-1")
    expect(sendFrames(server)).toEqual([
      { type: "send", local_id: "mine-1", receiver_id: bob, content_type: "image", content: "ref", create_time: 1_000_000 }
    ])
  })

  it("rejects with the code of a refusal that a retry cannot fix", async () => {
    const { client, server, results } = setup()
    server.sendBehaviour = () => "receiver_not_found"
    await connect(client)

    const error = await client.send({ receiver_id: "u_nobody", content: "?" }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(SendError)
    expect(error).toMatchObject({ code: "receiver_not_found", localId: "local-1" })
    expect(results).toEqual([{ ok: false, local_id: "local-1", code: "receiver_not_found", message: "receiver_not_found" }])
    expect(sendFrames(server)).toHaveLength(1)
  })

  it("refuses content over the limit without sending it", async () => {
    const { client, server, results, bob } = setup()
    await connect(client)
    await expect(client.send({ receiver_id: bob, content: "x".repeat(16_385) })).rejects.toMatchObject({
      code: "invalid_frame"
    })
    expect(results).toMatchObject([{ ok: false, code: "invalid_frame" }])
    expect(sendFrames(server)).toEqual([])
  })

  it("sends again with the same local_id after unavailable, with backoff", async () => {
    const { client, server, clock, bob } = setup()
    server.sendBehaviour = (_frame, attempt) => (attempt < 3 ? "unavailable" : "accept")
    await connect(client)

    const sent = client.send({ receiver_id: bob, content: "again" })
    await flush()
    expect(sendFrames(server)).toHaveLength(1)
    await clock.advance(75)
    expect(sendFrames(server)).toHaveLength(2)
    await clock.advance(150)

    expect((await sent).server_id).toBe("m_u_alice_local-1")
    expect(sendFrames(server).map((frame) => frame.local_id)).toEqual(["local-1", "local-1", "local-1"])
  })

  it("gives up after the bounded number of attempts", async () => {
    const { client, server, clock, bob } = setup({ maxSendAttempts: 2 })
    server.sendBehaviour = () => "unavailable"
    await connect(client)

    const sent = client.send({ receiver_id: bob, content: "never" }).catch((e: unknown) => e)
    await clock.advance(10_000)
    expect(await sent).toMatchObject({ code: "unavailable" })
    expect(sendFrames(server)).toHaveLength(2)
  })

  it("retries with the same local_id after a reconnect when the socket died before the result", async () => {
    const { client, server, clock, received, alice, bob } = setup()
    server.sendBehaviour = (_frame, attempt) => (attempt === 1 ? "accept-then-die" : "accept")
    await connect(client)

    const sent = client.send({ receiver_id: bob, content: "lost result" })
    await flush()
    expect(client.status).toBe("closed")
    await clock.advance(75)

    const outcome = await sent
    expect(outcome).toEqual({ local_id: "local-1", server_id: `m_${alice}_local-1`, send_time: 2 })
    expect(sendFrames(server).map((frame) => frame.local_id)).toEqual(["local-1", "local-1"])
    expect(server.inboxes.get(bob)).toHaveLength(1) // stored once: idempotent on local_id
    expect(received.map((e) => e.message.server_id)).toEqual([outcome.server_id])
  })

  it("takes the result from its own entry, matched by local_id, when only the result was lost", async () => {
    const { client, server, clock, alice, bob } = setup()
    server.sendBehaviour = () => "push-then-die"
    await connect(client)

    const sent = client.send({ receiver_id: bob, content: "pushed, then lost" })
    await flush()
    await clock.advance(75)

    expect(await sent).toEqual({ local_id: "local-1", server_id: `m_${alice}_local-1`, send_time: 2 })
    expect(sendFrames(server)).toHaveLength(1) // not sent again
  })

  it("fails pending sends and stops reconnecting on close()", async () => {
    const { client, server, clock, bob } = setup()
    server.sendBehaviour = () => "unavailable"
    await connect(client)
    const sent = client.send({ receiver_id: bob, content: "bye" }).catch((e: unknown) => e)
    await flush()

    client.close()
    expect(await sent).toMatchObject({ code: "closed" })
    await clock.advance(60_000)
    expect(server.sockets).toHaveLength(1)
    expect(server.open()).toHaveLength(0)
  })
})
