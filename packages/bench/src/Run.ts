/**
 * A bench run: start (or attach to) the target, spread the users over load-generator worker
 * processes, drive the scenario, print progress every second, then account for every message
 * and stop what it started.
 */
import { type ChildProcess, execFileSync, fork } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { availableParallelism as cpus } from "node:os"
import { resolve } from "node:path"
import { cpuSample, cpuUse, formatCpuUse, machine, settledRss } from "./Machine.ts"
import { type Counters, type FromWorker, type GroupPlan, type SendTarget, type ToWorker, zeroCounters } from "./Messages.ts"
import type { Options } from "./Options.ts"
import { formatProfile, nowUs, profilesIn, summarizeProfile, type Window } from "./Profile.ts"
import {
  accountPairs,
  addAccounts,
  bySecond,
  concatSamples,
  sentFrom,
  emptyAccount,
  mergeSpreads,
  type PairDetail,
  summarize,
  summarizeSpread
} from "./Stats.ts"
import { formatServerGc, gcBetween, readGc, type ServerGc } from "./ServerGc.ts"
import { attach, makeRunDir, repoRoot, startClusterTarget, startStandalone, type Target } from "./Targets.ts"

const workerPath = new URL("./Worker.ts", import.meta.url).pathname

const zero = zeroCounters

const sum = (all: ReadonlyArray<Counters>): Counters => {
  const total: Record<string, number> = { ...zero }
  for (const c of all) {
    for (const key of Object.keys(zero)) {
      total[key] = key === "lastDeliveryAt" ? Math.max(total[key]!, c.lastDeliveryAt) : total[key]! + (c as any)[key]
    }
  }
  return total as unknown as Counters
}

class Worker {
  readonly child: ChildProcess
  counters: Counters = zero
  private readonly inbox: Array<FromWorker> = []
  private readonly waiters: Array<{ type: string; resolve: (m: any) => void; reject: (e: Error) => void }> = []
  private failure: Error | undefined
  readonly id: number

  constructor(id: number) {
    this.id = id
    this.child = fork(workerPath, [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] })
    this.child.on("message", (message: FromWorker) => {
      if ("counters" in message) this.counters = message.counters
      if (message.type === "progress") return
      if (message.type === "failed") return this.fail(new Error(`worker ${id} failed: ${message.error}`))
      const at = this.waiters.findIndex((w) => w.type === message.type)
      if (at >= 0) this.waiters.splice(at, 1)[0]!.resolve(message)
      else this.inbox.push(message)
    })
    this.child.on("exit", (code, signal) => this.fail(new Error(`worker ${id} exited (${code ?? signal})`)))
  }

  private fail(error: Error) {
    this.failure ??= error
    for (const waiter of this.waiters.splice(0)) waiter.reject(error)
  }

  send(message: ToWorker) {
    this.child.send(message)
  }

  /** The next message of `type`, within `timeoutMs`. */
  next<T extends FromWorker["type"]>(type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>> {
    const at = this.inbox.findIndex((m) => m.type === type)
    if (at >= 0) return Promise.resolve(this.inbox.splice(at, 1)[0] as any)
    if (this.failure !== undefined) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.findIndex((w) => w.resolve === done)
        if (i >= 0) this.waiters.splice(i, 1)
        reject(new Error(`worker ${this.id}: no ${type} within ${timeoutMs} ms`))
      }, timeoutMs)
      const done = (m: any) => {
        clearTimeout(timer)
        resolve(m)
      }
      this.waiters.push({ type, resolve: done, reject: (e) => (clearTimeout(timer), reject(e)) })
    })
  }

  kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL")
  }
}

// Everything the run started, stopped on the way out whatever the way.
const cleanups: Array<() => Promise<void>> = []
let cleaning: Promise<void> | undefined
export const cleanup = () =>
  cleaning ??= (async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch((error) => console.error("cleanup:", error))
  })()

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const all = <A>(workers: ReadonlyArray<Worker>, f: (w: Worker) => Promise<A>) => Promise.all(workers.map(f))
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

/** The span the profiles are summarized over: set by the scenario when it starts and ends measuring. */
let measured: Window | undefined

/** Raises the open-files limit of this process (inherited by the workers and servers it starts). */
const raiseFileLimit = (wanted: number) => {
  const current = Number(/Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"))?.[1] ?? 0)
  if (current >= wanted) return current
  try {
    execFileSync("prlimit", ["--pid", String(process.pid), `--nofile=${wanted}:${wanted}`], { stdio: "pipe" })
    return wanted
  } catch (error) {
    const reason = String((error as { stderr?: unknown }).stderr ?? "").trim() || (error as Error).message
    console.warn(`open-files limit stays at ${current} (could not raise it to ${wanted}: ${reason}; needs CAP_SYS_RESOURCE for more than the hard limit)`)
    return current
  }
}

/** The commit of this checkout and whether its tree had changes (the server code may not be this checkout: see server_code). */
const codeVersion = () => {
  try {
    const git = (...args: Array<string>) => execFileSync("git", ["-C", repoRoot, ...args], { stdio: "pipe" }).toString().trim()
    return { repo_head: git("rev-parse", "HEAD"), repo_dirty: git("status", "--porcelain", "--untracked-files=no") !== "" }
  } catch {
    return {}
  }
}

const startTarget = async (options: Options, runDir: string, profileDir: string | undefined): Promise<Target> => {
  const serverRoot = resolve(options.serverRoot ?? repoRoot)
  if (options.target === "standalone") return startStandalone(runDir, profileDir, serverRoot)
  if (options.target === "cluster") return startClusterTarget(runDir, profileDir, serverRoot, options.discardBacklog)
  return attach(options.target, options.serverPid)
}

export const run = async (options: Options): Promise<number> => {
  const runId = randomBytes(4).toString("hex")
  const runDir = makeRunDir()
  const profileDir = options.profile === undefined ? undefined : resolve(options.profile)
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
  // Only this run's profiles are summarized, whatever else the folder holds.
  const earlierProfiles = new Set(profileDir === undefined ? [] : profilesIn(profileDir))
  const fileLimit = raiseFileLimit(Math.max(65_536, options.connections * 2 + 4_096))
  const startedAt = new Date()
  console.log(`bench ${options.scenario} on ${options.target}: run ${runId}, files in ${runDir}, open-files limit ${fileLimit}`)

  console.log(options.target === "cluster" ? "starting the cluster (about 20 s)…" : `starting ${options.target}…`)
  const target = await startTarget(options, runDir, profileDir)
  cleanups.push(async () => {
    console.log(`stopping ${target.name}…`)
    await target.stop()
  })
  console.log(`target ${target.baseUrl} ready${target.logFile === undefined ? "" : ` (server log: ${target.logFile})`}`)

  const workerCount = Math.min(options.workers, options.users)
  const workers = Array.from({ length: workerCount }, (_, i) => new Worker(i))
  cleanups.push(async () => workers.forEach((w) => w.kill()))

  const shares = workers.map((w) => Array.from({ length: options.users }, (_, i) => i).filter((i) => i % workerCount === w.id))
  const loginConcurrency = Math.max(1, Math.ceil(options.loginConcurrency / workerCount))
  const loginAt = Date.now()
  console.log(`logging in ${options.users} users in ${workerCount} workers (${loginConcurrency * workerCount} at a time)…`)
  for (const w of workers) {
    w.send({
      type: "setup",
      scenario: options.scenario,
      runId,
      baseUrl: target.baseUrl,
      users: shares[w.id]!,
      connect: options.scenario !== "idle",
      loginConcurrency
    })
  }
  const ready = await all(workers, (w) => w.next("ready", 600_000))
  const ids: Array<string> = []
  for (const r of ready) for (const [index, id] of r.ids) ids[index] = id
  const setupS = {
    login_s: Math.round((Date.now() - loginAt) / 100) / 10,
    groups_s: undefined as number | undefined
  }
  console.log(`${options.users} users logged in${options.scenario === "idle" ? "" : " with a socket each"} in ${setupS.login_s} s`)

  let targets: Array<SendTarget | null> = []
  let plans: Array<GroupPlan> = []
  if (options.scenario === "1to1") {
    targets = ids.map((_, i) => {
      const partner = (i + 1) % options.users
      return { kind: "user", index: partner, id: ids[partner]! }
    })
  } else if (options.scenario === "group") {
    plans = Array.from({ length: options.groups }, (_, g) => {
      const members = Array.from({ length: options.members }, (_, m) => g * options.members + m)
      return { index: g, members, senders: members.slice(0, options.senders) }
    })
    const groupsAt = Date.now()
    console.log(`creating ${options.groups} group(s) of ${options.members} members…`)
    for (const w of workers) w.send({ type: "groups", groups: plans, ids })
    const grouped = await all(workers, (w) => w.next("grouped", 300_000))
    const groupIds: Array<string> = []
    for (const g of grouped) for (const [index, id] of g.created) groupIds[index] = id
    setupS.groups_s = Math.round((Date.now() - groupsAt) / 100) / 10
    const notices = sum(workers.map((w) => w.counters)).notices
    console.log(`created in ${setupS.groups_s} s (${fmt(notices)} group_created notices arrived at the members; they are not counted as messages)`)
    targets = ids.map(() => null)
    for (const plan of plans) for (const sender of plan.senders) targets[sender] = { kind: "group", index: plan.index, id: groupIds[plan.index]! }
  }

  const base = {
    scenario: options.scenario,
    target: options.target,
    target_url: target.baseUrl,
    date: startedAt.toISOString(),
    machine: machine(),
    users: options.users,
    workers: workerCount,
    command: `npm run bench -- ${process.argv.slice(2).join(" ")}`,
    server_code: resolve(options.serverRoot ?? repoRoot),
    ...codeVersion(),
    setup_s: setupS
  }
  const names = new Map([...target.processNames, ...workers.map((w) => [w.child.pid!, `bench worker ${w.id}`] as const), [process.pid, "bench main"]])
  const result = options.scenario === "idle"
    ? await idle(options, target, workers, base)
    : await traffic(options, workers, targets, plans, ready.flatMap((r) => r.wsUrls), base, names, target.metrics)

  await cleanup()
  let profiles: Array<unknown> | undefined
  if (profileDir !== undefined) {
    profiles = []
    for (const file of profilesIn(profileDir).filter((f) => !earlierProfiles.has(f))) {
      const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file)?.[1])
      // Only the measured span (sending and draining, or holding idle sockets), not the start.
      const summary = summarizeProfile(file, 15, measured)
      const label = `${target.processNames.get(pid) ?? `pid ${pid}`}, measured span only (${file})`
      console.log("\n" + formatProfile(summary, label))
      profiles.push({ process: target.processNames.get(pid) ?? null, window_us: measured, ...summary })
    }
  }
  const backlog = target.backlog?.()
  // A server that crashed mid-run explains lost messages and closed sockets: said plainly.
  const exits = target.exits()
  if (exits.length > 0) {
    console.log(
      `\nSERVER PROCESSES ENDED DURING THE RUN: ${exits.map((e) => `${e.name} (${e.signal === null ? `exit code ${e.code}` : `signal ${e.signal}`})`).join(", ")}` +
        (target.logFile === undefined ? "" : `; see ${target.logFile}`)
    )
  }
  const output = {
    ...result,
    server_exits: exits,
    ...(backlog === undefined ? {} : { backlog_after_stop: backlog }),
    ...(profiles === undefined ? {} : { profiles })
  }
  if (options.json !== undefined) {
    writeFileSync(resolve(process.env["INIT_CWD"] ?? repoRoot, options.json), JSON.stringify(output, null, 2) + "\n")
    console.log(`\nwrote ${options.json}`)
  }
  console.log(`server logs kept in ${runDir}`)
  return 0
}

const progressLine = (elapsedS: number, now: Counters, before: Counters, group: boolean) =>
  `${String(elapsedS).padStart(4)}s  sent ${fmt(now.sent)} (${fmt(now.sent - before.sent)}/s)  ` +
  `acked ${fmt(now.acked)} (${fmt(now.acked - before.acked)}/s)  ` +
  `delivered ${fmt(now.deliveredDistinct)} (${fmt(now.deliveredDistinct - before.deliveredDistinct)}/s)  ` +
  (group
    ? `entries ${fmt(now.deliveredDistinct + now.ownDistinct)} (${fmt(now.deliveredDistinct + now.ownDistinct - before.deliveredDistinct - before.ownDistinct)}/s)  `
    : "") +
  `in flight ${fmt(now.sent - now.acked - now.ackErrors - now.ackTimeouts)}` +
  (now.ackErrors + now.ackTimeouts > 0 ? `  send errors ${now.ackErrors} timeouts ${now.ackTimeouts}` : "") +
  (now.foreign > 0 ? `  FOREIGN ${now.foreign}` : "") +
  (now.socketsClosed > 0 ? `  sockets closed ${now.socketsClosed}` : "")

/** 1to1 and group: send for the duration, drain, then account for every message. */
const traffic = async (
  options: Options,
  workers: ReadonlyArray<Worker>,
  targets: ReadonlyArray<SendTarget | null>,
  plans: ReadonlyArray<GroupPlan>,
  wsUrls: ReadonlyArray<string>,
  base: Record<string, unknown>,
  names: ReadonlyMap<number, string>,
  metrics: Target["metrics"]
) => {
  const group = options.scenario === "group"
  // Deliveries each acknowledged message owes to receivers other than its sender.
  const receiversPerMessage = group ? options.members - 1 : 1
  const senderCount = targets.filter((t) => t !== null).length
  console.log(
    `${options.users} sockets open (${[...new Set(wsUrls)].join(", ")}); ${senderCount} senders` +
      `${group ? ` to ${options.groups} group(s) of ${options.members}` : ""} for ${options.durationS} s at ` +
      `${options.rate === 0 ? `full speed (${options.inflight} in flight per sender)` : `${options.rate} messages/s`}`
  )
  const gcBefore = await Promise.all(metrics.map(({ url }) => readGc(url)))
  const cpuBefore = cpuSample()
  const goAt = Date.now()
  const goUs = nowUs()
  for (const w of workers) {
    w.send({ type: "go", targets, rate: options.rate / workers.length, durationMs: options.durationS * 1000, inflight: options.inflight })
  }
  let before = sum(workers.map((w) => w.counters))
  let tick = 0
  const progress = setInterval(() => {
    const now = sum(workers.map((w) => w.counters))
    console.log(progressLine(++tick, now, before, group))
    before = now
  }, 1000)
  try {
    const sent = await all(workers, (w) => w.next("sent", options.durationS * 1000 + 60_000))
    const sendEndAt = Date.now()
    // Drain: until every acknowledged message has arrived (and stayed quiet for a second), or the drain period ends.
    const drainUntil = Date.now() + options.drainS * 1000
    let quietSince = Date.now()
    let lastDelivered = -1
    let drainComplete = false
    while (Date.now() < drainUntil) {
      const now = sum(workers.map((w) => w.counters))
      if (now.delivered + now.ownDistinct !== lastDelivered) {
        lastDelivered = now.delivered + now.ownDistinct
        quietSince = Date.now()
      }
      if (now.deliveredDistinct >= now.acked * receiversPerMessage && now.ownDistinct >= now.acked && Date.now() - quietSince >= 1_000) {
        drainComplete = true
        break
      }
      await sleep(100)
    }
    // Deliveries still arriving when the drain period ended: what is "lost" may only be late.
    const stillArriving = !drainComplete && Date.now() - quietSince < 2_000
    clearInterval(progress)
    measured = { startUs: goUs, endUs: nowUs() }
    const cpu = cpuUse(cpuBefore, cpuSample(), names)
    const gcAfter = await Promise.all(metrics.map(({ url }) => readGc(url)))
    const serverGc: ReadonlyArray<ServerGc> = metrics.map(({ name }, i) => {
      const before = gcBefore[i]
      const after = gcAfter[i]
      return { name, pauses: before === undefined || after === undefined ? null : gcBetween(before, after) }
    })

    const acked = new Map<string, Int32Array>()
    for (const s of sent) for (const [pair, ks] of s.acked) acked.set(pair, ks)
    for (const w of workers) w.send(group ? { type: "finish", acked } : { type: "finish" })
    const reports = await all(workers, (w) => w.next("report", 120_000))

    const arrivals = new Map<string, Array<number>>()
    const ownArrivals = new Map<string, Array<number>>()
    for (const r of reports) {
      for (const [pair, ks] of r.arrivals) arrivals.set(pair, ks)
      for (const [pair, ks] of r.ownArrivals) ownArrivals.set(pair, ks)
    }
    const received = group
      ? reports.reduce(
        (acc, r) => ({
          total: addAccounts(acc.total, r.members!.total),
          faulty: [...acc.faulty, ...r.members!.faulty],
          unexpected: acc.unexpected + r.members!.unexpected
        }),
        { total: emptyAccount, faulty: [] as Array<PairDetail>, unexpected: 0 }
      )
      : { ...accountPairs(acked, arrivals), unexpected: 0 }
    const own = accountPairs(acked, ownArrivals)
    const counters = sum(reports.map((r) => r.counters))
    const ackLatency = summarize(concatSamples(reports.map((r) => r.ackLatencies)))
    const allLatencies = concatSamples(reports.map((r) => r.latencies))
    const sendTimes = concatSamples(reports.map((r) => r.sendTimes))
    const latencyBySecond = bySecond(allLatencies, sendTimes, goAt)
    const afterWarmup = summarize(sentFrom(allLatencies, sendTimes, goAt + options.warmupS * 1000))
    const latency = summarize(allLatencies)
    const spread = group ? summarizeSpread(mergeSpreads(reports.map((r) => r.spread!)), receiversPerMessage) : undefined
    const sendSeconds = (sendEndAt - goAt) / 1000
    // From the first send to the last delivery: with a backlog, deliveries go on after sending stops.
    const deliverySeconds = Math.max(options.durationS, (counters.lastDeliveryAt - goAt) / 1000)
    const perS = (n: number) => Math.round(n / deliverySeconds)
    const generatorCpuS = reports.reduce((n, r) => n + r.cpuMs, 0) / 1000
    const result = {
      ...base,
      ...(group ? { groups: options.groups, members: options.members, senders_per_group: options.senders } : {}),
      rate: options.rate,
      inflight_per_sender: options.inflight,
      duration_s: options.durationS,
      sent: counters.sent,
      acked: counters.acked,
      send_errors: counters.ackErrors,
      send_timeouts: counters.ackTimeouts,
      throttled: counters.throttled,
      delivered: received.total.delivered,
      delivered_per_s: perS(received.total.delivered),
      ...(group
        ? {
          messages_delivered: spread!.complete,
          messages_per_s: perS(spread!.complete),
          inbox_entries: received.total.delivered + own.total.delivered,
          inbox_entries_per_s: perS(received.total.delivered + own.total.delivered)
        }
        : {}),
      delivery_window_s: Math.round(deliverySeconds * 10) / 10,
      acked_per_s: Math.round(counters.acked / options.durationS),
      lost: received.total.lost,
      drain_complete: drainComplete,
      still_arriving_at_drain_end: stillArriving,
      duplicated: received.total.duplicated,
      reordered: received.total.reordered,
      unexpected: received.unexpected + counters.foreign,
      latency_ms: latency,
      latency_by_second_ms: latencyBySecond,
      warmup_s: options.warmupS,
      latency_after_warmup_ms: afterWarmup,
      ...(group ? { latency_first_member_ms: spread!.first, latency_last_member_ms: spread!.last } : {}),
      ack_latency_ms: ackLatency,
      sender_copies: { delivered: own.total.delivered, lost: own.total.lost, duplicated: own.total.duplicated, reordered: own.total.reordered },
      notices_ignored: counters.notices,
      faulty_pairs: received.faulty.slice(0, 20),
      sockets_closed: counters.socketsClosed,
      socket_closes: reports.flatMap((r) => r.closes).slice(0, 20),
      errors: reports.flatMap((r) => r.errors).slice(0, 20),
      send_phase_s: Math.round(sendSeconds * 10) / 10,
      load_generator_cpu_s: Math.round(generatorCpuS * 10) / 10,
      cpu: {
        ...cpu,
        machine_cpu_ms_per_message: counters.acked === 0
          ? null
          : Math.round((cpu.machine_busy_pct / 100 * cpus() * cpu.seconds * 1000 / counters.acked) * 1000) / 1000
      },
      server_gc: serverGc,
      notes: [
        group
          ? "delivered/lost/duplicated/reordered count, at every member, each message of every other sender of its group (per-sender order is the guarantee); the sender's own inbox copy is checked separately (sender_copies)."
          : "delivered/lost/duplicated/reordered count a message at its receiver only; the sender's own inbox copy is checked separately (sender_copies).",
        "lost: acknowledged (send_result ok) but not pushed to the receiver's socket within the drain period; the bench does not pull gaps. still_arriving_at_drain_end: the drain period ended with deliveries still coming (lost may then be late, not lost).",
        "latency_ms: send (client clock, before the frame is written) to the first push at the receiver" +
          (group ? ", over every member that got it; latency_first_member_ms / latency_last_member_ms: per message, to the first member and to the last (messages that reached all members)" : "") +
          "; latency_by_second_ms: the same by the second (from the start of sending) each message was sent in; latency_after_warmup_ms: the same for the messages sent after the first warmup_s seconds (a server's first second runs cold: JIT, caches, first statements); ack_latency_ms: send to send_result.",
        "delivered_per_s: distinct deliveries / (first send → last delivery), at least --duration; acked_per_s: acknowledged sends / --duration. When acked_per_s > delivered_per_s the server builds a backlog (sends are acknowledged once on the bus, before they are stored).",
        ...(group ? ["inbox_entries: delivered + the senders' own copies (messages × members); messages_delivered: messages that reached every other member of their group."] : []),
        "notices (kind notice, e.g. group_created) are pushed too; they are counted in notices_ignored and nowhere else.",
        "cpu: CPU time per process over the send and drain phases, from /proc (machine-wide: other work on the machine shows there too); machine_cpu_ms_per_message: all the machine's busy time over those phases / acknowledged messages.",
        "server_gc: each server process's garbage-collector pauses over the send and drain phases, by kind (minor: scavenges, major: full collections), from its /metrics (the main thread's; standalone's PGlite worker collects on its own); null when its metrics could not be read."
      ]
    }
    console.log([
      "",
      `summary: ${result.sent} sent, ${result.acked} acked (${result.acked_per_s}/s over ${options.durationS} s), ${result.delivered} delivered (${result.delivered_per_s}/s over ${result.delivery_window_s} s, first send to last delivery)`,
      ...(group
        ? [`  group: ${spread!.complete} messages reached all ${receiversPerMessage} other members (${perS(spread!.complete)}/s); ${received.total.delivered + own.total.delivered} inbox entries pushed (${perS(received.total.delivered + own.total.delivered)}/s)`]
        : []),
      `  at receivers: lost ${result.lost}, duplicated ${result.duplicated}, reordered ${result.reordered}${result.unexpected > 0 ? `, UNEXPECTED ${result.unexpected}` : ""}` +
        (stillArriving ? ` (the drain period ended while deliveries were still arriving: "lost" may be late; raise --drain)` : ""),
      `  sender's own copies (checked separately): delivered ${own.total.delivered}, lost ${own.total.lost}, duplicated ${own.total.duplicated}, reordered ${own.total.reordered}`,
      `  send→delivery ms: p50 ${latency.p50}  p95 ${latency.p95}  p99 ${latency.p99}  max ${latency.max}  (n=${latency.count}${group ? ", every member" : ""})`,
      ...(group
        ? [
          `    first member:   p50 ${spread!.first.p50}  p95 ${spread!.first.p95}  p99 ${spread!.first.p99}  max ${spread!.first.max}`,
          `    last member:    p50 ${spread!.last.p50}  p95 ${spread!.last.p95}  p99 ${spread!.last.p99}  max ${spread!.last.max}`
        ]
        : []),
      `  after the first ${options.warmupS} s: p50 ${afterWarmup.p50}  p95 ${afterWarmup.p95}  p99 ${afterWarmup.p99}  max ${afterWarmup.max}  (n=${afterWarmup.count})`,
      `  send→delivery p99 by second of sending (s: ms): ${latencyBySecond.map((s) => `${s.second}: ${Math.round(s.p99)}`).join(", ")}`,
      `  send→ack ms:      p50 ${ackLatency.p50}  p95 ${ackLatency.p95}  p99 ${ackLatency.p99}  max ${ackLatency.max}`,
      ...(result.send_errors + result.send_timeouts > 0 ? [`  send errors ${result.send_errors}, send timeouts ${result.send_timeouts}: ${result.errors.slice(0, 3).join("; ")}`] : []),
      ...(result.throttled > 0 ? [`  ${result.throttled} sends the rate asked for could not go (every sender had ${options.inflight} awaiting results)`] : []),
      ...(result.sockets_closed > 0 ? [`  ${result.sockets_closed} sockets closed by the server: ${result.socket_closes.slice(0, 3).join("; ")}`] : []),
      ...(received.faulty.length > 0 ? [`  faulty pairs: ${received.faulty.slice(0, 5).map((p) => JSON.stringify(p)).join(" ")}`] : []),
      `  notices ignored: ${counters.notices}; load generator CPU: ${result.load_generator_cpu_s} s`,
      formatCpuUse(cpu, counters.acked),
      ...(serverGc.length === 0 ? [] : ["server GC pauses over the run (main threads):", ...formatServerGc(serverGc).map((line) => `  ${line}`)])
    ].join("\n"))
    return result
  } finally {
    clearInterval(progress)
  }
}

const mb = (bytes: number | undefined) => (bytes === undefined ? "(not measured)" : (bytes / 2 ** 20).toFixed(1))

const idle = async (options: Options, target: Target, workers: ReadonlyArray<Worker>, base: Record<string, unknown>) => {
  const pids = target.gatewayPids
  if (pids.length === 0) console.log("no gateway pid known (pass --server-pid): bytes_per_connection will not be measured")
  console.log(pids.length > 0 ? `measuring the RSS of pid ${pids.join(", ")} before opening (5 s settle)…` : "")
  const rssBefore = pids.length > 0 ? await settledRss(pids) : undefined
  /** Opens `connections` more, spread over the workers. */
  const openMore = async (connections: number) => {
    const shares = workers.map((w) => Math.floor(connections / workers.length) + (w.id < connections % workers.length ? 1 : 0))
    workers.forEach((w, i) => w.send({ type: "open", connections: shares[i]! }))
    const opened = await all(workers, (w) => w.next("opened", 900_000))
    return {
      count: opened.reduce((n, o) => n + o.opened, 0),
      failed: opened.reduce((n, o) => n + o.failed, 0),
      firstError: opened.find((o) => o.firstError !== undefined)?.firstError
    }
  }
  // In two halves, the RSS read after each: the second half's growth is what a connection costs
  // once the process's fixed costs (a young generation first filled, caches, code) are paid.
  const firstHalf = Math.floor(options.connections / 2)
  console.log(`opening ${options.connections} connections, in two halves…`)
  const openedAt = Date.now()
  const openedUs = nowUs()
  let tick = 0
  const progress = setInterval(() => {
    const now = sum(workers.map((w) => w.counters))
    console.log(`${String(++tick).padStart(4)}s  open ${fmt(now.socketsOpen)}  closed ${fmt(now.socketsClosed)}`)
  }, 1000)
  try {
    const first = await openMore(firstHalf)
    const firstS = (Date.now() - openedAt) / 1000
    console.log(`${first.count} open; measuring the RSS at half (5 s settle)…`)
    const rssHalf = pids.length > 0 ? await settledRss(pids) : undefined
    const secondAt = Date.now()
    const second = await openMore(options.connections - firstHalf)
    const openS = firstS + (Date.now() - secondAt) / 1000
    const count = first.count + second.count
    const failed = first.failed + second.failed
    const firstError = first.firstError ?? second.firstError
    console.log(`${count} open, ${failed} failed${firstError === undefined ? "" : ` (first: ${firstError})`} in ${openS.toFixed(1)} s (not counting the reading at half); measuring the RSS after (5 s settle)…`)
    const rssAfter = pids.length > 0 ? await settledRss(pids) : undefined
    const holdUntil = Date.now() + options.durationS * 1000
    while (Date.now() < holdUntil) await sleep(250)
    // Before the workers close the sockets.
    const rssEnd = pids.length > 0 ? await settledRss(pids, 0) : undefined
    clearInterval(progress)
    measured = { startUs: openedUs, endUs: nowUs() }
    for (const w of workers) w.send({ type: "finish" })
    const reports = await all(workers, (w) => w.next("report", 60_000))
    const counters = sum(reports.map((r) => r.counters))
    const perConnection = rssBefore !== undefined && rssAfter !== undefined && count > 0
      ? Math.round((rssAfter - rssBefore) / count)
      : null
    const perConnectionSecondHalf = rssHalf !== undefined && rssAfter !== undefined && second.count > 0
      ? Math.round((rssAfter - rssHalf) / second.count)
      : null
    const result = {
      ...base,
      rate: 0,
      duration_s: options.durationS,
      sent: 0,
      delivered: 0,
      delivered_per_s: 0,
      lost: 0,
      duplicated: 0,
      reordered: 0,
      latency_ms: summarize([]),
      ack_latency_ms: summarize([]),
      connections: options.connections,
      connections_opened: count,
      connections_failed: failed,
      first_error: firstError ?? null,
      open_s: Math.round(openS * 10) / 10,
      still_open_at_end: counters.socketsOpen,
      closed_by_server: counters.socketsClosed,
      rss_pids: pids,
      rss_before_bytes: rssBefore ?? null,
      rss_after_bytes: rssAfter ?? null,
      rss_half_bytes: rssHalf ?? null,
      rss_end_bytes: rssEnd ?? null,
      connections_opened_second_half: second.count,
      bytes_per_connection: perConnection,
      bytes_per_connection_second_half: perConnectionSecondHalf,
      notes: [
        "bytes_per_connection: (VmRSS after − VmRSS before) / connections opened, of the gateway process(es) " +
        "(standalone: the server; cluster: the ws processes), each read after a 5 s settle as the median of 3 samples 1 s apart; " +
        "the server's GC cannot be forced from outside, so this is RSS growth, not live heap. " +
        "bytes_per_connection_second_half: (VmRSS after − VmRSS at half) / connections opened in the second half. " +
        "rss_end_bytes: VmRSS at the end of the hold, before the sockets close (median of 3 samples 1 s apart). " +
        "open_s: the time the two halves took to open, not counting the reading between them."
      ]
    }
    console.log([
      "",
      `summary: ${count} of ${options.connections} connections open (${failed} failed), ${counters.socketsOpen} still open after ${options.durationS} s`,
      perConnection === null
        ? "  RSS per connection: not measured"
        : `  RSS ${mb(rssBefore)} → ${mb(rssHalf)} at half → ${mb(rssAfter)} MB: ${fmt(perConnection)} bytes per connection; ` +
          `${perConnectionSecondHalf === null ? "not measured" : fmt(perConnectionSecondHalf)} per connection of the second half; ` +
          `${mb(rssEnd)} MB at the end of the hold`
    ].join("\n"))
    return result
  } finally {
    clearInterval(progress)
  }
}
