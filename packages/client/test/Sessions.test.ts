import { describe, expect, it } from "vitest"
import { ConnectError, type Fetch, type FetchResponse, HttpError, ImClient, type ImClientOptions, type WebSocketLike } from "../src/Client.ts"
import type { TokenPair } from "../src/Wire.ts"
import { FakeClock, type Listener } from "./Doubles.ts"

// Test doubles: a server of login sessions (login, refresh, logout); the clock is in Doubles.ts --

interface FakeSocket extends WebSocketLike {
  readonly token: string
  /** The login session of its token, at the upgrade. */
  readonly sid: string
  closed: { readonly code: number; readonly reason: string } | undefined
  /** The server's end closes it. */
  serverClose(code: number, reason: string): void
}

const ACCESS_TTL = 10 * 60_000
const REFRESH_TTL = 30 * 24 * 3_600_000

/** Login sessions as the server keeps them: a session is live until logout; one refresh token is good at a time. */
class SessionServer {
  readonly requests: Array<string> = []
  readonly sockets: Array<FakeSocket> = []
  readonly sessions = new Map<string, { refresh: string; live: boolean }>()
  /** Access tokens: their session and expiry. */
  readonly tokens = new Map<string, { readonly sid: string; readonly exp: number }>()
  /** When true, every socket is refused (4001), whatever its token. */
  refuseSockets = false
  #next = 0

  readonly clock: FakeClock
  constructor(clock: FakeClock) {
    this.clock = clock
  }

  readonly fetch: Fetch = async (url, init) => {
    const { pathname, search } = new URL(url)
    const route = `${init.method} ${pathname}`
    this.requests.push(`${route}${search}`)
    const input = typeof init.body === "string" ? JSON.parse(init.body) : {}
    const answer = (status: number, json?: unknown): FetchResponse => ({
      ok: status < 400,
      status,
      json: () => (json === undefined ? Promise.reject(new Error("no body")) : Promise.resolve(json))
    })
    if (route === "POST /auth/login") {
      const sid = `s${++this.#next}`
      this.sessions.set(sid, { refresh: "", live: true })
      return answer(200, { ...this.#issue(sid), user: { id: "u_alice", account: "alice", name: "Alice", created_at: 1 } })
    }
    if (route === "POST /auth/refresh") {
      const sid = [...this.sessions].find(([, session]) => session.refresh === input.refresh_token)?.[0]
      const session = sid === undefined ? undefined : this.sessions.get(sid)
      if (sid === undefined || session === undefined || !session.live) {
        return answer(401, { _tag: "Unauthorized", message: "revoked token" })
      }
      return answer(200, this.#issue(sid))
    }
    const token = (init.headers["authorization"] ?? "").replace(/^Bearer /, "")
    const refused = this.refusal(token)
    if (refused !== undefined) return answer(401, { _tag: "Unauthorized", message: refused })
    const sid = this.tokens.get(token)!.sid
    if (route === "POST /auth/logout") {
      this.endSession(sid)
      return answer(204)
    }
    if (route === "GET /inbox/newest") return answer(200, { seq: 0 })
    return answer(404, { _tag: "NotFound", message: route })
  }

  readonly WebSocket = (() => {
    const server = this
    return class implements FakeSocket {
      readonly #listeners = new Map<string, Array<Listener>>()
      readonly token: string
      readonly sid: string
      closed: { code: number; reason: string } | undefined
      constructor(url: string) {
        this.token = new URL(url).searchParams.get("token") ?? ""
        this.sid = server.tokens.get(this.token)?.sid ?? ""
        server.sockets.push(this)
        queueMicrotask(() => {
          const token = this.token
          const refused = server.refuseSockets ? "invalid token" : server.refusal(token)
          if (refused !== undefined) return this.serverClose(4001, refused)
          this.#dispatch("message", { data: JSON.stringify({ type: "welcome", user_id: "u_alice", heartbeat_timeout_ms: 0 }) })
        })
      }
      addEventListener(type: string, listener: Listener): void {
        this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener])
      }
      send(): void {}
      close(code = 1000, reason = ""): void {
        this.serverClose(code, reason)
      }
      serverClose(code: number, reason: string): void {
        if (this.closed !== undefined) return
        this.closed = { code, reason }
        queueMicrotask(() => this.#dispatch("close", { code, reason }))
      }
      #dispatch(type: string, event: Parameters<Listener>[0]): void {
        for (const listener of this.#listeners.get(type) ?? []) listener(event)
      }
    }
  })()

  /** Why a token is refused, or undefined when it is good. */
  refusal(token: string): string | undefined {
    const access = this.tokens.get(token)
    if (access === undefined) return "invalid token"
    if (access.exp <= this.clock.now) return "expired token"
    return this.sessions.get(access.sid)?.live === true ? undefined : "revoked token"
  }

  /** A logout of the session, from this client or another device. */
  endSession(sid: string): void {
    this.sessions.get(sid)!.live = false
    for (const socket of this.sockets) if (socket.sid === sid) socket.serverClose(4009, "logged out")
  }

  /** The access token stops being accepted before its expiry (as a restarted server with a new secret would). */
  forget(token: string): void {
    this.tokens.delete(token)
  }

  #issue(sid: string): TokenPair {
    const n = ++this.#next
    const token = `t${n}`
    const refresh_token = `r${n}`
    this.tokens.set(token, { sid, exp: this.clock.now + ACCESS_TTL })
    this.sessions.get(sid)!.refresh = refresh_token
    return { token, expires_at: this.clock.now + ACCESS_TTL, refresh_token, refresh_expires_at: this.clock.now + REFRESH_TTL }
  }
}

/** A client of the session server, on its clock. */
const clientOf = (server: SessionServer, options: Partial<ImClientOptions> = {}) =>
  new ImClient({
    baseUrl: "http://im.test",
    fetch: server.fetch,
    WebSocket: server.WebSocket,
    timers: server.clock,
    now: () => server.clock.now,
    ...options
  })

const setup = async () => {
  const clock = new FakeClock()
  const server = new SessionServer(clock)
  const client = clientOf(server, { random: () => 0.5, backoff: { initialDelayMs: 100, maxDelayMs: 1_000 } })
  const tokens: Array<TokenPair | undefined> = []
  client.on("tokens", (pair) => tokens.push(pair))
  await client.login("alice", "correct horse")
  server.requests.length = 0
  return { clock, server, client, tokens }
}

const connect = async (client: ImClient, clock: FakeClock): Promise<void> => {
  const connected = client.connect()
  await clock.advance(0)
  await connected
}

// Tests ----------------------------------------------------------------------------------------

describe("ImClient login sessions", () => {
  it("login keeps the access and the refresh token, and tells the tokens listener", async () => {
    const { client, clock, tokens } = await setup()
    expect(client.token).toBe("t2")
    expect(client.refreshToken).toBe("r2")
    expect(client.tokenExpiresAt).toBe(clock.now + ACCESS_TTL)
    expect(tokens).toEqual([{ token: "t2", expires_at: clock.now + ACCESS_TTL, refresh_token: "r2", refresh_expires_at: clock.now + REFRESH_TTL }])
  })

  it("a request refused with 401 refreshes once and goes again with the new token", async () => {
    const { client, server, tokens } = await setup()
    server.forget("t2")
    expect(await client.newestSeq()).toBe(0)
    expect(server.requests).toEqual(["GET /inbox/newest", "POST /auth/refresh", "GET /inbox/newest"])
    expect(client.token).toBe("t3")
    expect(client.refreshToken).toBe("r3")
    expect(tokens.at(-1)).toMatchObject({ token: "t3", refresh_token: "r3" })
    // The old refresh token is spent: the server only takes r3 now.
    expect(server.sessions.get("s1")!.refresh).toBe("r3")
  })

  it("a token about to expire is refreshed before the request, not after a 401", async () => {
    const { client, clock, server } = await setup()
    clock.now += ACCESS_TTL - 30_000
    expect(await client.newestSeq()).toBe(0)
    expect(server.requests).toEqual(["POST /auth/refresh", "GET /inbox/newest"])
    expect(client.token).toBe("t3")
  })

  it("requests refused at the same time share one refresh", async () => {
    const { client, server } = await setup()
    server.forget("t2")
    expect(await Promise.all([client.newestSeq(), client.newestSeq(), client.newestSeq()])).toEqual([0, 0, 0])
    expect(server.requests.filter((request) => request === "POST /auth/refresh")).toHaveLength(1)
    expect(client.token).toBe("t3")
  })

  it("a refused refresh means the session is over: the request fails with 401 and the tokens are gone", async () => {
    const { client, server, tokens } = await setup()
    server.endSession("s1") // logged out on another device
    const error = await client.newestSeq().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(HttpError)
    expect(error).toMatchObject({ status: 401 })
    expect(server.requests).toEqual(["GET /inbox/newest", "POST /auth/refresh"])
    expect([client.token, client.refreshToken]).toEqual([undefined, undefined])
    expect(tokens.at(-1)).toBeUndefined()
    await expect(client.connect()).rejects.toBeInstanceOf(ConnectError)
  })

  it("a socket refused with 4001 refreshes, then reconnects with the new token", async () => {
    const { client, clock, server } = await setup()
    await connect(client, clock)
    expect(client.status).toBe("synced")
    server.forget("t2")
    // The connection drops; the next attempt with t2 is refused, and the client refreshes.
    server.sockets[0]!.serverClose(1006, "")
    await clock.advance(5_000)
    expect(server.sockets.map((socket) => [socket.token, socket.closed?.code])).toEqual([
      ["t2", 1006],
      ["t2", 4001],
      ["t3", undefined]
    ])
    expect(client.status).toBe("synced")
  })

  it("a token about to expire is refreshed before reconnecting", async () => {
    const { client, clock, server } = await setup()
    await connect(client, clock)
    clock.now += ACCESS_TTL - 1_000
    server.sockets[0]!.serverClose(1006, "")
    await clock.advance(5_000)
    expect(server.sockets.map((socket) => socket.token)).toEqual(["t2", "t3"])
    expect(client.status).toBe("synced")
  })

  it("a socket refused again after a refresh stops with unauthorized", async () => {
    const { client, clock, server } = await setup()
    server.refuseSockets = true
    const connected = client.connect().catch((e: unknown) => e)
    await clock.advance(5_000)
    expect(await connected).toMatchObject({ reason: "unauthorized" })
    expect(client.status).toBe("unauthorized")
    expect(server.requests.filter((request) => request === "POST /auth/refresh")).toHaveLength(1)
    expect(server.sockets).toHaveLength(2)
  })

  it("logout ends the session on the server, closes the client and forgets the tokens", async () => {
    const { client, clock, server, tokens } = await setup()
    await connect(client, clock)
    await client.logout()
    expect(server.requests.at(-1)).toBe("POST /auth/logout")
    expect(server.sessions.get("s1")!.live).toBe(false)
    expect(server.sockets[0]!.closed?.code).toBe(1000)
    expect(client.status).toBe("closed")
    expect([client.token, client.refreshToken]).toEqual([undefined, undefined])
    expect(tokens.at(-1)).toBeUndefined()
    await expect(client.connect()).rejects.toBeInstanceOf(ConnectError)
  })

  it("logout with an expired access token refreshes first, so the session really ends", async () => {
    const { client, clock, server } = await setup()
    clock.now += ACCESS_TTL
    await client.logout()
    expect(server.requests).toEqual(["POST /auth/refresh", "POST /auth/logout"])
    expect(server.sessions.get("s1")!.live).toBe(false)
  })

  it("resumes from a refresh token alone", async () => {
    const { clock, server } = await setup()
    const client = clientOf(server, { refreshToken: "r2" })
    await connect(client, clock)
    expect(client.token).toBe("t3")
    expect(server.sockets.map((socket) => socket.token)).toEqual(["t3"])
  })
})
