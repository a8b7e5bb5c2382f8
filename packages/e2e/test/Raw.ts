import { createHash, randomUUID } from "node:crypto"
import type { Target } from "./Target.ts"

/** A user made for one test: unique account, a fresh token. */
export interface TestUser {
  readonly id: string
  readonly account: string
  readonly password: string
  readonly token: string
}

/** The SHA-256 of bytes, in hex: an upload and its download compared. */
export const digest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

export const postJson = async (target: Target, path: string, body: unknown, token?: string) => {
  const response = await fetch(target.baseUrl + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body)
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

export const getJson = async (target: Target, path: string, token?: string) => {
  const response = await fetch(target.baseUrl + path, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
  })
  return { status: response.status, body: await response.json().catch(() => undefined) as any }
}

export const makeUser = async (target: Target, name: string): Promise<TestUser> => {
  const account = `${name}-${randomUUID().slice(0, 8)}`
  const password = `pw-${randomUUID()}`
  const registered = await postJson(target, "/auth/register", { account, password, name })
  if (registered.status !== 201) throw new Error(`register failed: ${JSON.stringify(registered)}`)
  const login = await postJson(target, "/auth/login", { account, password })
  if (login.status !== 200) throw new Error(`login failed: ${JSON.stringify(login)}`)
  return { id: registered.body.id, account, password, token: login.body.token }
}

export const newestSeq = async (target: Target, user: TestUser): Promise<number> => {
  const answer = await getJson(target, "/inbox/newest", user.token)
  if (answer.status !== 200) throw new Error(`newest failed: ${JSON.stringify(answer)}`)
  return answer.body.seq
}

/** The whole inbox, page by page. */
export const pullAll = async (target: Target, user: TestUser): Promise<Array<any>> => {
  const entries: Array<any> = []
  let after = 0
  while (true) {
    const answer = await getJson(target, `/inbox?after=${after}&limit=100`, user.token)
    if (answer.status !== 200) throw new Error(`pull failed: ${JSON.stringify(answer)}`)
    entries.push(...answer.body.entries)
    after = answer.body.through
    if (!answer.body.has_more) return entries
  }
}

/** How long `next` waits for a frame: longer against a running server (a cluster on shared cores). */
const FRAME_WAIT_MS = process.env["IM_E2E_URL"] === undefined || process.env["IM_E2E_URL"] === "" ? 5_000 : 20_000

/** A WebSocket driven by hand, for what the SDK would never send. */
export interface RawSocket {
  readonly send: (frame: unknown) => void
  /** The next frame (JSON-parsed) that matches, waiting up to 5 s (20 s against a running server). */
  readonly next: (match?: (frame: any) => boolean) => Promise<any>
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>
  readonly close: () => void
}

/**
 * Unless `keepAlive` is false, the socket pings every 500 ms like a real client (the test servers
 * close a socket silent for 2 s) and its pongs are not handed to `next` unless asked for.
 */
export const openRaw = (url: string, options: { readonly keepAlive?: boolean } = {}): Promise<RawSocket> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url)
    const keepAlive = options.keepAlive ?? true
    const pinger = keepAlive
      ? setInterval(() => socket.readyState === WebSocket.OPEN && socket.send(`{"type":"ping"}`), 500)
      : undefined
    socket.addEventListener("close", () => clearInterval(pinger))
    const inbox: Array<any> = []
    const waiters: Array<{ match: (frame: any) => boolean; resolve: (frame: any) => void }> = []
    const closed = new Promise<{ code: number; reason: string }>((done) => {
      socket.addEventListener("close", (event) => done({ code: event.code, reason: event.reason }))
    })
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data))
      const at = waiters.findIndex((waiter) => waiter.match(frame))
      if (at >= 0) waiters.splice(at, 1)[0]!.resolve(frame)
      else if (!(keepAlive && frame.type === "pong")) inbox.push(frame)
    })
    socket.addEventListener("error", () => reject(new Error(`cannot open ${url}`)))
    socket.addEventListener("open", () =>
      resolve({
        send: (frame) => socket.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
        next: (match = () => true) => {
          const at = inbox.findIndex(match)
          if (at >= 0) return Promise.resolve(inbox.splice(at, 1)[0])
          return new Promise((found, timedOut) => {
            const waiter = { match, resolve: found }
            waiters.push(waiter)
            setTimeout(() => {
              const index = waiters.indexOf(waiter)
              if (index >= 0) {
                waiters.splice(index, 1)
                timedOut(new Error(`no matching frame within ${FRAME_WAIT_MS / 1000} s`))
              }
            }, FRAME_WAIT_MS)
          })
        },
        closed,
        close: () => socket.close()
      }))
  })

export const sendFrame = (receiver: string, content: string, localId: string = randomUUID()) => ({
  type: "send",
  local_id: localId,
  receiver_id: receiver,
  content_type: "text",
  content,
  create_time: Date.now()
})

/** Waits until `check` holds, polling; fails naming `what` after `timeoutMs`. */
export const eventually = async (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}
