/**
 * A load-generator process: logs in its share of the users over HTTP, holds their WebSockets,
 * creates the groups it owns, sends numbered, timestamped text messages at its share of the rate
 * and records what arrives. Started by the bench's main process with an IPC channel (see
 * Messages.ts); never inside the server's process.
 */
import { encodeStamp, groupPairKey, now, pairKey } from "./Content.ts"
import { type Counters, type FromWorker, type GroupPlan, type SendTarget, type ToWorker, zeroCounters } from "./Messages.ts"
import { Recorder } from "./Receive.ts"
import { accountMembers } from "./Stats.ts"

const PASSWORD = "bench-password-0001"
const HTTP_TIMEOUT_MS = 30_000
const WELCOME_TIMEOUT_MS = 30_000
const ACK_TIMEOUT_MS = 10_000
const PING_EVERY_MS = 20_000
const MAX_SAMPLES = 4_000_000
const MAX_ERRORS = 20
const NOTICE_WAIT_MS = 15_000

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

/** A user's socket (every user of 1to1 and group has one). */
interface Conn {
  readonly user: User
  socket: WebSocket | undefined
  open: boolean
  /** Its group (group scenario). */
  group: number | undefined
  lastFrameAt: number
}

interface Sender {
  readonly conn: Conn
  readonly target: SendTarget
  readonly pair: string
  nextK: number
  inflight: number
}

interface Pending {
  readonly sender: Sender
  readonly k: number
  readonly at: number
}

const errors: Array<string> = []
const closes: Array<string> = []
const noteError = (what: string) => {
  if (errors.length < MAX_ERRORS) errors.push(what)
}

const counters: { -readonly [K in keyof Counters]: Counters[K] } = { ...zeroCounters }
const snapshot = (): Counters => ({ ...counters })

const requestJson = async (method: string, url: string, body: unknown, token?: string): Promise<{ status: number; body: any }> => {
  const response = await fetch(url, {
    method,
    headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
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
    const registered = await requestJson("POST", `${baseUrl}/auth/register`, { account, password: PASSWORD, name: account })
    if (registered.status === 201 || registered.status === 409) break
    if (attempt >= 3) throw new Error(`register ${account}: ${registered.status} ${JSON.stringify(registered.body)}`)
  }
  const answer = await requestJson("POST", `${baseUrl}/auth/login`, { account, password: PASSWORD })
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
let baseUrl = ""
const conns = new Map<number, Conn>()
const senders = new Map<number, Sender>()
const pending = new Map<string, Pending>()
const acked = new Map<string, Array<number>>()
let groupPlans: ReadonlyArray<GroupPlan> = []
const latencies = new Samples()
const sendTimes = new Samples()
const ackLatencies = new Samples()
const idleSockets: Array<WebSocket> = []
let sending = false
let runId = ""
let rate = 0
let inflightCap = 4
/** CPU time used when sending began (the report gives the CPU used since). */
let cpuAtGo: NodeJS.CpuUsage | undefined

const recorder = new Recorder(counters, latencies, (reason) => noteError(`foreign message: ${reason}`), sendTimes)

const onFrame = (conn: Conn) => (frame: any) => {
  if (frame.type === "message") {
    recorder.message(frame.message, { index: conn.user.index, id: conn.user.id, group: conn.group }, now())
  } else if (frame.type === "send_result") {
    const sent = pending.get(frame.local_id)
    if (sent === undefined) return
    pending.delete(frame.local_id)
    sent.sender.inflight--
    if (frame.ok === true) {
      counters.acked++
      ackLatencies.push(now() - sent.at)
      let list = acked.get(sent.sender.pair)
      if (list === undefined) acked.set(sent.sender.pair, list = [])
      list.push(sent.k)
    } else {
      counters.ackErrors++
      noteError(`send_result ${frame.error?.code}: ${frame.error?.message}`)
    }
    if (sending && rate === 0) sendFrom(sent.sender)
  } else if (frame.type === "error") {
    noteError(`error frame ${frame.code}: ${frame.message}`)
  }
}

const sendFrom = (sender: Sender) => {
  const { conn, target } = sender
  if (!conn.open || conn.socket === undefined) return false
  const k = sender.nextK++
  const at = now()
  const localId = `${runId}-${conn.user.index}-${k}`
  pending.set(localId, { sender, k, at })
  sender.inflight++
  conn.lastFrameAt = at
  counters.sent++
  const content = encodeStamp({ sender: conn.user.index, receiver: target.index, toGroup: target.kind === "group", k, sentAt: at })
  conn.socket.send(JSON.stringify({
    type: "send",
    local_id: localId,
    ...(target.kind === "group" ? { group_id: target.id } : { receiver_id: target.id }),
    content_type: "text",
    content,
    create_time: Math.floor(at)
  }))
  return true
}

const setup = async (message: Extract<ToWorker, { type: "setup" }>) => {
  runId = message.runId
  baseUrl = message.baseUrl
  await pool(message.users, message.loginConcurrency, async (index) => {
    users.push(await login(message.baseUrl, message.runId, index))
  })
  users.sort((a, b) => a.index - b.index)
  if (message.connect) {
    await pool(users, 50, async (user) => {
      const conn: Conn = { user, socket: undefined, open: false, group: undefined, lastFrameAt: now() }
      conns.set(user.index, conn)
      conn.socket = await connect(user, onFrame(conn), (code, reason) => {
        conn.open = false
        counters.socketsOpen--
        counters.socketsClosed++
        if (closes.length < MAX_ERRORS) closes.push(`user ${user.index}: ${code} ${reason}`)
      })
      conn.open = true
      counters.socketsOpen++
    })
  }
  tell({ type: "ready", ids: users.map((u) => [u.index, u.id] as const), wsUrls: [...new Set(users.map((u) => u.wsUrl))] })
}

const groups = async (message: Extract<ToWorker, { type: "groups" }>) => {
  groupPlans = message.groups
  for (const plan of message.groups) {
    for (const member of plan.members) {
      const conn = conns.get(member)
      if (conn !== undefined) conn.group = plan.index
    }
  }
  const created: Array<readonly [number, string]> = []
  await pool(message.groups.filter((plan) => conns.has(plan.members[0]!)), 4, async (plan) => {
    const owner = conns.get(plan.members[0]!)!.user
    const answer = await requestJson("POST", `${baseUrl}/groups`, {
      name: `bench ${runId} ${plan.index}`,
      member_ids: plan.members.slice(1).map((index) => message.ids[index]!)
    }, owner.token)
    if (answer.status !== 201) throw new Error(`create group ${plan.index}: ${answer.status} ${JSON.stringify(answer.body)}`)
    created.push([plan.index, answer.body.id])
  })
  // Every member here gets one group_created notice; let them pass before the sending starts.
  const members = [...conns.values()].filter((conn) => conn.group !== undefined).length
  const until = now() + NOTICE_WAIT_MS
  while (counters.notices < members && now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
  tell({ type: "grouped", created, counters: snapshot() })
}

const pinger = setInterval(() => {
  const at = now()
  for (const conn of conns.values()) {
    if (conn.open && at - conn.lastFrameAt > PING_EVERY_MS) {
      conn.lastFrameAt = at
      conn.socket!.send(`{"type":"ping"}`)
    }
  }
  // Idle sockets: a twentieth of them each second, so each is pinged every 20 s.
  const slice = Math.ceil(idleSockets.length / 20)
  const start = (Math.floor(at / 1000) % 20) * slice
  for (const socket of idleSockets.slice(start, start + slice)) {
    if (socket.readyState === WebSocket.OPEN) socket.send(`{"type":"ping"}`)
  }
  // Sends with no result within the timeout stop holding a slot (pending is in send order).
  for (const [localId, sent] of pending) {
    if (at - sent.at < ACK_TIMEOUT_MS) break
    pending.delete(localId)
    counters.ackTimeouts++
    sent.sender.inflight--
  }
}, 1000)

const go = async (message: Extract<ToWorker, { type: "go" }>) => {
  rate = message.rate
  inflightCap = message.inflight
  cpuAtGo = process.cpuUsage()
  for (const conn of conns.values()) {
    const target = message.targets[conn.user.index]
    if (target === null || target === undefined) continue
    const pair = target.kind === "group" ? groupPairKey(conn.user.index, target.index) : pairKey(conn.user.index, target.index)
    senders.set(conn.user.index, { conn, target, pair, nextK: 1, inflight: 0 })
  }
  const list = [...senders.values()]
  const startedAt = now()
  const endAt = startedAt + message.durationMs
  sending = true
  const progress = setInterval(() => tell({ type: "progress", counters: snapshot() }), 1000)
  if (list.length === 0) {
    await new Promise((resolve) => setTimeout(resolve, message.durationMs))
  } else if (rate === 0) {
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

let openProgress: ReturnType<typeof setInterval> | undefined

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
  // `open` comes once per half of the run: the progress reports start once.
  openProgress ??= setInterval(() => tell({ type: "progress", counters: snapshot() }), 1000).unref()
}

/** Group: what each member held here must have got — every other sender of its group. */
const memberExpectations = (): Array<readonly [number, ReadonlyArray<string>]> => {
  const out: Array<readonly [number, ReadonlyArray<string>]> = []
  for (const plan of groupPlans) {
    const pairs = plan.senders.map((sender) => [sender, groupPairKey(sender, plan.index)] as const)
    for (const member of plan.members) {
      if (conns.has(member)) out.push([member, pairs.filter(([sender]) => sender !== member).map(([, pair]) => pair)])
    }
  }
  return out
}

const finish = async (message: Extract<ToWorker, { type: "finish" }>) => {
  clearInterval(pinger)
  const cpu = process.cpuUsage(cpuAtGo)
  const group = message.acked === undefined
    ? {}
    : (() => {
      const account = accountMembers(message.acked, memberExpectations(), recorder.arrivals)
      return { members: { ...account, faulty: account.faulty.slice(0, 20) }, spread: recorder.spread }
    })()
  const report: FromWorker = {
    type: "report",
    counters: snapshot(),
    arrivals: message.acked === undefined ? recorder.arrivals : new Map(),
    ownArrivals: recorder.ownArrivals,
    ...group,
    latencies: latencies.toArray(),
    sendTimes: sendTimes.toArray(),
    ackLatencies: ackLatencies.toArray(),
    cpuMs: (cpu.user + cpu.system) / 1000,
    closes,
    errors
  }
  for (const conn of conns.values()) conn.socket?.close(1000)
  for (const socket of idleSockets) socket.close(1000)
  // A report can be tens of MB (every latency sample): leave only once it has gone out, and the close frames too.
  process.send!(report, undefined, {}, () => setTimeout(() => process.exit(0), 500))
}

const fail = (error: unknown) => {
  tell({ type: "failed", error: String((error as Error)?.stack ?? error) })
  setTimeout(() => process.exit(1), 200)
}

process.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "setup":
      return setup(message).catch(fail)
    case "groups":
      return groups(message).catch(fail)
    case "go":
      return go(message).catch(fail)
    case "open":
      return open(message).catch(fail)
    case "finish":
      return finish(message).catch(fail)
  }
})
// The main process went away: nothing left to report to.
process.on("disconnect", () => process.exit(0))
