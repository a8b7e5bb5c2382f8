/**
 * A load-generator process: logs in its share of the users over HTTP, holds their WebSockets,
 * sends numbered, timestamped text messages at its share of the rate and records what arrives.
 * Started by the bench's main process with an IPC channel (see Messages.ts); never inside the
 * server's process.
 */
import { decodeStamp, encodeStamp, now, pairKey } from "./Content.ts"
import { type Counters, type FromWorker, type ToWorker, zeroCounters } from "./Messages.ts"

const PASSWORD = "bench-password-0001"
const HTTP_TIMEOUT_MS = 30_000
const WELCOME_TIMEOUT_MS = 30_000
const ACK_TIMEOUT_MS = 10_000
const PING_EVERY_MS = 20_000
const MAX_SAMPLES = 4_000_000
const MAX_ERRORS = 20

const tell = (message: FromWorker) => process.send!(message)

class Samples {
  private data = new Float64Array(1024)
  length = 0
  push(value: number) {
    if (this.length === this.data.length) {
      if (this.length >= MAX_SAMPLES) return
      const grown = new Float64Array(Math.min(MAX_SAMPLES, this.data.length * 2))
      grown.set(this.data)
      this.data = grown
    }
    this.data[this.length++] = value
  }
  toArray() {
    return this.data.slice(0, this.length)
  }
}

interface User {
  readonly index: number
  readonly id: string
  readonly token: string
  readonly wsUrl: string
}

interface Pending {
  readonly pair: string
  readonly k: number
  readonly at: number
}

interface Sender {
  readonly user: User
  socket: WebSocket | undefined
  open: boolean
  receiver: number
  receiverId: string
  nextK: number
  inflight: number
  lastFrameAt: number
}

const errors: Array<string> = []
const closes: Array<string> = []
const noteError = (what: string) => {
  if (errors.length < MAX_ERRORS) errors.push(what)
}

const counters: { -readonly [K in keyof Counters]: Counters[K] } = { ...zeroCounters }
const snapshot = (): Counters => ({ ...counters })

const postJson = async (url: string, body: unknown): Promise<{ status: number; body: any }> => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS)
  })
  return { status: response.status, body: await response.json().catch(() => undefined) }
}

/** Runs `work` over `items` with at most `limit` at a time. */
const pool = async <A>(items: ReadonlyArray<A>, limit: number, work: (item: A) => Promise<void>) => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!)
  }))
}

const login = async (baseUrl: string, runId: string, index: number): Promise<User> => {
  const account = `b${runId}-${index}`
  for (let attempt = 1;; attempt++) {
    const registered = await postJson(`${baseUrl}/auth/register`, { account, password: PASSWORD, name: account })
    if (registered.status === 201 || registered.status === 409) break
    if (attempt >= 3) throw new Error(`register ${account}: ${registered.status} ${JSON.stringify(registered.body)}`)
  }
  const answer = await postJson(`${baseUrl}/auth/login`, { account, password: PASSWORD })
  if (answer.status !== 200) throw new Error(`login ${account}: ${answer.status} ${JSON.stringify(answer.body)}`)
  const wsUrl = typeof answer.body.ws_url === "string" ? answer.body.ws_url : `${baseUrl.replace(/^http/, "ws")}/ws`
  return { index, id: answer.body.user.id, token: answer.body.token, wsUrl }
}

/** Opens a socket and resolves once `welcome` arrived; `onFrame` sees every later frame. */
const connect = (user: User, onFrame: (frame: any) => void, onClose: (code: number, reason: string) => void) =>
  new Promise<WebSocket>((resolve, reject) => {
    const socket = new WebSocket(`${user.wsUrl}?token=${encodeURIComponent(user.token)}`)
    let welcomed = false
    const timer = setTimeout(() => {
      if (!welcomed) {
        reject(new Error(`no welcome within ${WELCOME_TIMEOUT_MS} ms`))
        socket.close()
      }
    }, WELCOME_TIMEOUT_MS)
    socket.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data))
      if (!welcomed) {
        if (frame.type === "welcome") {
          welcomed = true
          clearTimeout(timer)
          resolve(socket)
        }
        return
      }
      onFrame(frame)
    })
    socket.addEventListener("error", (event) => {
      if (!welcomed) {
        clearTimeout(timer)
        reject(new Error(`socket error: ${(event as any).message ?? "connection failed"}`))
      }
    })
    socket.addEventListener("close", (event) => {
      clearTimeout(timer)
      if (!welcomed) reject(new Error(`closed before welcome: ${event.code} ${event.reason}`))
      else onClose(event.code, event.reason)
    })
  })

// State of this worker ------------------------------------------------------------------------

let users: Array<User> = []
const senders = new Map<number, Sender>()
const pending = new Map<string, Pending>()
const acked = new Map<string, Array<number>>()
const arrivals = new Map<string, Array<number>>()
const ownArrivals = new Map<string, Array<number>>()
const seen = new Map<string, Set<number>>()
const ownSeen = new Map<string, Set<number>>()
const latencies = new Samples()
const ackLatencies = new Samples()
const idleSockets: Array<WebSocket> = []
let sending = false
let runId = ""

const record = (
  lists: Map<string, Array<number>>,
  sets: Map<string, Set<number>>,
  pair: string,
  k: number
): boolean => {
  let list = lists.get(pair)
  if (list === undefined) lists.set(pair, list = [])
  list.push(k)
  let set = sets.get(pair)
  if (set === undefined) sets.set(pair, set = new Set())
  if (set.has(k)) return false
  set.add(k)
  return true
}

const onFrame = (self: User) => (frame: any) => {
  if (frame.type === "message") {
    const message = frame.message
    const stamp = typeof message?.content === "string" ? decodeStamp(message.content) : undefined
    if (stamp === undefined) return
    const pair = pairKey(stamp.sender, stamp.receiver)
    if (message.sender_id === self.id) {
      if (record(ownArrivals, ownSeen, pair, stamp.k)) counters.ownDistinct++
    } else {
      counters.delivered++
      if (record(arrivals, seen, pair, stamp.k)) {
        counters.deliveredDistinct++
        const at = now()
        counters.lastDeliveryAt = at
        latencies.push(at - stamp.sentAt)
      }
    }
  } else if (frame.type === "send_result") {
    const sent = pending.get(frame.local_id)
    if (sent === undefined) return
    pending.delete(frame.local_id)
    const sender = senders.get(self.index)!
    sender.inflight--
    if (frame.ok === true) {
      counters.acked++
      ackLatencies.push(now() - sent.at)
      let list = acked.get(sent.pair)
      if (list === undefined) acked.set(sent.pair, list = [])
      list.push(sent.k)
    } else {
      counters.ackErrors++
      noteError(`send_result ${frame.error?.code}: ${frame.error?.message}`)
    }
    if (sending && rate === 0) sendFrom(sender)
  } else if (frame.type === "error") {
    noteError(`error frame ${frame.code}: ${frame.message}`)
  }
}

const sendFrom = (sender: Sender) => {
  if (!sender.open || sender.socket === undefined) return false
  const k = sender.nextK++
  const at = now()
  const localId = `${runId}-${sender.user.index}-${k}`
  pending.set(localId, { pair: pairKey(sender.user.index, sender.receiver), k, at })
  sender.inflight++
  sender.lastFrameAt = at
  counters.sent++
  sender.socket.send(JSON.stringify({
    type: "send",
    local_id: localId,
    receiver_id: sender.receiverId,
    content_type: "text",
    content: encodeStamp({ sender: sender.user.index, receiver: sender.receiver, k, sentAt: at }),
    create_time: Math.floor(at)
  }))
  return true
}

let rate = 0
let inflightCap = 4

const setup = async (message: Extract<ToWorker, { type: "setup" }>) => {
  runId = message.runId
  await pool(message.users, 8, async (index) => {
    users.push(await login(message.baseUrl, message.runId, index))
  })
  users.sort((a, b) => a.index - b.index)
  if (message.connect) {
    await pool(users, 50, async (user) => {
      const sender: Sender = {
        user,
        socket: undefined,
        open: false,
        receiver: -1,
        receiverId: "",
        nextK: 1,
        inflight: 0,
        lastFrameAt: now()
      }
      senders.set(user.index, sender)
      sender.socket = await connect(user, onFrame(user), (code, reason) => {
        sender.open = false
        counters.socketsOpen--
        counters.socketsClosed++
        if (closes.length < MAX_ERRORS) closes.push(`user ${user.index}: ${code} ${reason}`)
      })
      sender.open = true
      counters.socketsOpen++
    })
  }
  tell({ type: "ready", ids: users.map((u) => [u.index, u.id] as const), wsUrls: [...new Set(users.map((u) => u.wsUrl))] })
}

const pinger = setInterval(() => {
  const at = now()
  for (const sender of senders.values()) {
    if (sender.open && at - sender.lastFrameAt > PING_EVERY_MS) {
      sender.lastFrameAt = at
      sender.socket!.send(`{"type":"ping"}`)
    }
  }
  // Idle sockets: a twentieth of them each second, so each is pinged every 20 s.
  const slice = Math.ceil(idleSockets.length / 20)
  const start = (Math.floor(at / 1000) % 20) * slice
  for (const socket of idleSockets.slice(start, start + slice)) {
    if (socket.readyState === WebSocket.OPEN) socket.send(`{"type":"ping"}`)
  }
  // Sends with no result within the timeout stop holding a slot.
  for (const [localId, sent] of pending) {
    if (at - sent.at < ACK_TIMEOUT_MS) break
    pending.delete(localId)
    counters.ackTimeouts++
    const sender = senders.get(Number(sent.pair.split(">")[0]))
    if (sender !== undefined) sender.inflight--
  }
}, 1000)

const go = async (message: Extract<ToWorker, { type: "go" }>) => {
  rate = message.rate
  inflightCap = message.inflight
  for (const sender of senders.values()) {
    sender.receiver = message.partners[sender.user.index]!
    sender.receiverId = message.ids[sender.receiver]!
  }
  const list = [...senders.values()]
  const startedAt = now()
  const endAt = startedAt + message.durationMs
  sending = true
  const progress = setInterval(() => tell({ type: "progress", counters: snapshot() }), 1000)
  if (rate === 0) {
    for (const sender of list) for (let i = 0; i < inflightCap; i++) sendFrom(sender)
    await new Promise((resolve) => setTimeout(resolve, message.durationMs))
  } else {
    let issued = 0
    let cursor = 0
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const at = now()
        if (at >= endAt) {
          clearInterval(tick)
          return resolve()
        }
        const due = Math.floor(((at - startedAt) / 1000) * rate)
        while (issued < due) {
          let sent = false
          for (let tries = 0; tries < list.length && !sent; tries++) {
            const sender = list[cursor]!
            cursor = (cursor + 1) % list.length
            if (sender.inflight < inflightCap) sent = sendFrom(sender)
          }
          if (!sent) {
            counters.throttled += due - issued
            issued = due
            break
          }
          issued++
        }
      }, 2)
    })
  }
  sending = false
  const waitUntil = now() + ACK_TIMEOUT_MS + 2_000
  while (pending.size > 0 && now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 50))
  clearInterval(progress)
  tell({
    type: "sent",
    counters: snapshot(),
    acked: new Map([...acked].map(([pair, ks]) => [pair, Int32Array.from(ks)]))
  })
  setInterval(() => tell({ type: "progress", counters: snapshot() }), 1000).unref()
}

const open = async (message: Extract<ToWorker, { type: "open" }>) => {
  let opened = 0
  let failed = 0
  let firstError: string | undefined
  const plan = Array.from({ length: message.connections }, (_, i) => users[i % users.length]!)
  await pool(plan, 50, async (user) => {
    try {
      const socket = await connect(user, () => {}, (code, reason) => {
        counters.socketsOpen--
        counters.socketsClosed++
        if (closes.length < MAX_ERRORS) closes.push(`user ${user.index}: ${code} ${reason}`)
      })
      idleSockets.push(socket)
      counters.socketsOpen++
      opened++
    } catch (error) {
      failed++
      firstError ??= String((error as Error).message ?? error)
    }
  })
  tell({ type: "opened", opened, failed, firstError })
  setInterval(() => tell({ type: "progress", counters: snapshot() }), 1000).unref()
}

const finish = async () => {
  clearInterval(pinger)
  tell({
    type: "report",
    counters: snapshot(),
    arrivals,
    ownArrivals,
    latencies: latencies.toArray(),
    ackLatencies: ackLatencies.toArray(),
    closes,
    errors
  })
  for (const sender of senders.values()) sender.socket?.close(1000)
  for (const socket of idleSockets) socket.close(1000)
  // Let the report and the close frames go out, then leave.
  setTimeout(() => process.exit(0), 500)
}

const fail = (error: unknown) => {
  tell({ type: "failed", error: String((error as Error)?.stack ?? error) })
  setTimeout(() => process.exit(1), 200)
}

process.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "setup":
      return setup(message).catch(fail)
    case "go":
      return go(message).catch(fail)
    case "open":
      return open(message).catch(fail)
    case "finish":
      return finish().catch(fail)
  }
})
// The main process went away: nothing left to report to.
process.on("disconnect", () => process.exit(0))
