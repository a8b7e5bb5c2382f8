/**
 * `npm run cluster`: the six services as separate processes against the local stack
 * (`npm run infra:up`), with 2 ws gateways and 2 consumers by default. Prints where each
 * listens; Ctrl-C (or SIGTERM) stops them all, each gracefully.
 *
 * No Consul agent can be installed on the machines this project is built on, so unless
 * CONSUL_HTTP_ADDR names a real agent, the cluster uses the project's loopback stand-in of the
 * part of Consul's HTTP API the services use (packages/consul/src/ConsulStandIn.ts).
 *
 * Environment: CLUSTER_WS (2), CLUSTER_CONSUMERS (2), AUTH_SECRET (random if unset), plus any
 * setting of the services (see README). Used by the cluster tests through `startCluster`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { ConsulStandIn } from "../packages/consul/src/ConsulStandIn.ts"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))

/**
 * Node flags of the ws gateways (docker-compose.yml gives them the same). A gateway holds many
 * sockets and little else, and V8's defaults here left about twice their memory resident: a
 * young generation of 64 MB per semi-space, all of it touched by a burst of connections and more
 * of the burst's garbage promoted, and an old generation let grow to four times what it held
 * before a full collection. With 16 MB semi-spaces and a full collection once the old generation
 * grew by half, 19,500 idle sockets over two gateways take about 6 KB of RSS each instead of
 * 15.6 KB, for about 0.008 ms more of a gateway's CPU per message (docs/benchmarks.md, "Idle
 * connections").
 */
export const GATEWAY_NODE_FLAGS: ReadonlyArray<string> = ["--max-semi-space-size=16", "--heap-growing-percent=50"]

/** The line a service logs once it is in the registry (packages/platform/src/Registration.ts), with its instance id. */
const REGISTERED = /registered as ([^"\s,]+)/

export interface ClusterProcess {
  readonly name: string
  readonly service: string
  readonly child: ChildProcess
  readonly listens: string
  /** Its Prometheus endpoint. */
  readonly metricsUrl: string
  readonly exited: Promise<number | null>
  /** Its instance id in the registry, once it has logged its registration (Registration.ts). */
  readonly instanceId: () => string | undefined
}

export interface Cluster {
  readonly apiUrl: string
  readonly consulAddress: string
  readonly processes: ReadonlyArray<ClusterProcess>
  /** Sends SIGTERM to one process (or SIGKILL with `hard`) and waits for it to exit. */
  readonly stopProcess: (name: string, options?: { readonly hard?: boolean }) => Promise<number | null>
  /** Starts a stopped process again, as it was first started; resolves with its pid once it is registered and passing. */
  readonly startProcess: (name: string) => Promise<number>
  /**
   * Stops one running process (SIGSTOP) for `ms` (1 to 60,000), then lets it go on (SIGCONT), as
   * a long pause would; resolves with its pid then. A process still paused when this script
   * ends is let go on.
   */
  readonly pauseProcess: (name: string, ms: number) => Promise<number>
  readonly stop: () => Promise<void>
}

export interface ClusterOptions {
  readonly gateways?: number
  readonly consumers?: number
  /** Extra environment for every service (e.g. test hooks). */
  readonly env?: Readonly<Record<string, string>>
  /** Where the services' output goes; default: this process's stdout, prefixed. */
  readonly onOutput?: (name: string, line: string) => void
}

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch((error: unknown) => {
    if (error instanceof Error && error.message.includes("exited during start")) throw error
    return false
  }))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** Processes `pauseProcess` stopped that are not let go on yet: they are, however this script ends. */
const paused = new Set<number>()
const resumePaused = () => {
  for (const pid of paused) {
    try {
      process.kill(pid, "SIGCONT")
    } catch {
      // Gone already.
    }
  }
  paused.clear()
}
process.on("exit", resumePaused)

export const startCluster = async (options: ClusterOptions = {}): Promise<Cluster> => {
  const gateways = options.gateways ?? 2
  const consumers = options.consumers ?? 2
  let standIn: ConsulStandIn | undefined
  let consulAddress = process.env["CONSUL_HTTP_ADDR"] ?? ""
  if (consulAddress === "") {
    standIn = new ConsulStandIn()
    await standIn.start()
    consulAddress = standIn.address
  }
  const env = {
    ...process.env,
    CONSUL_HTTP_ADDR: consulAddress,
    AUTH_SECRET: process.env["AUTH_SECRET"] ?? randomBytes(32).toString("hex"),
    ...options.env
  }
  const output = options.onOutput ?? ((name, line) => process.stdout.write(`[${name}] ${line}\n`))

  const plan: Array<{
    name: string
    service: string
    pkg: string
    env: Record<string, string>
    listens: string
    metrics: string
    nodeFlags?: ReadonlyArray<string>
  }> = [
    { name: "db", service: "db", pkg: "db", env: { METRICS_PORT: "8102" }, listens: "gRPC 127.0.0.1:7102", metrics: "http://127.0.0.1:8102/metrics" },
    { name: "chat", service: "chat", pkg: "chat", env: { METRICS_PORT: "8101" }, listens: "gRPC 127.0.0.1:7101", metrics: "http://127.0.0.1:8101/metrics" },
    { name: "pusher", service: "pusher", pkg: "pusher", env: { METRICS_PORT: "8103" }, listens: "gRPC 127.0.0.1:7103", metrics: "http://127.0.0.1:8103/metrics" },
    ...Array.from({ length: gateways }, (_, i) => ({
      name: `ws-${i + 1}`,
      service: "ws",
      pkg: "gateway",
      env: { WS_PORT: String(8081 + i), WS_GRPC_PORT: String(7104 + i), GATEWAY_ID: `ws-${i + 1}` },
      nodeFlags: GATEWAY_NODE_FLAGS,
      listens: `WebSocket ws://127.0.0.1:${8081 + i}/ws, gRPC 127.0.0.1:${7104 + i}`,
      metrics: `http://127.0.0.1:${8081 + i}/metrics`
    })),
    ...Array.from({ length: consumers }, (_, i) => ({
      name: `consumer-${i + 1}`,
      service: "consumer",
      pkg: "consumer",
      // Consumers share a host here: each gets its own metrics port.
      env: { METRICS_PORT: String(8110 + i) },
      listens: "Kafka groups im-consumer (im.messages) and im-consumer.fanout (im.fanout)",
      metrics: `http://127.0.0.1:${8110 + i}/metrics`
    })),
    { name: "api", service: "api", pkg: "api", env: {}, listens: "HTTP http://127.0.0.1:8080 (docs: /docs)", metrics: "http://127.0.0.1:8080/metrics" }
  ]

  const spawnProcess = (entry: (typeof plan)[number]): ClusterProcess => {
    const child = spawn(process.execPath, [...(entry.nodeFlags ?? []), `packages/${entry.pkg}/src/main.ts`], {
      cwd: repoRoot,
      env: { ...env, ...entry.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let instanceId: string | undefined
    for (const stream of [child.stdout!, child.stderr!]) {
      let buffered = ""
      stream.on("data", (chunk) => {
        buffered += String(chunk)
        const lines = buffered.split("\n")
        buffered = lines.pop()!
        for (const line of lines) {
          instanceId ??= REGISTERED.exec(line)?.[1]
          output(entry.name, line)
        }
      })
    }
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    return {
      name: entry.name,
      service: entry.service,
      child,
      listens: `${entry.listens}, metrics ${entry.metrics}`,
      metricsUrl: entry.metrics,
      exited,
      instanceId: () => instanceId
    }
  }
  /** The processes by name; a process started again takes its place. */
  const processes: Array<ClusterProcess> = plan.map(spawnProcess)
  const isRunning = (p: ClusterProcess) => p.child.exitCode === null && p.child.signalCode === null

  /** It has registered its instance, and the registry counts it passing. */
  const registered = async (p: ClusterProcess) => {
    const id = p.instanceId()
    if (id === undefined) return false
    const response = await fetch(`http://${consulAddress}/v1/health/service/${p.service}?passing`)
    const instances = await response.json() as Array<{ readonly Service: { readonly ID: string } }>
    return instances.some((instance) => instance.Service.ID === id)
  }
  /** Waits until `started` is registered and passing; fails at once, naming it, if one of `watched` exits meanwhile. */
  const untilRegistered = (started: ClusterProcess, watched: ReadonlyArray<ClusterProcess>) =>
    waitFor(`${started.name} to register`, async () => {
      const gone = watched.find((p) => !isRunning(p))
      if (gone !== undefined) throw new Error(`${gone.name} exited during start (code ${gone.child.exitCode})`)
      return registered(started)
    })

  const stopProcess = async (name: string, stopOptions: { readonly hard?: boolean } = {}) => {
    const found = processes.find((p) => p.name === name)
    if (found === undefined) throw new Error(`no process ${name}`)
    if (isRunning(found)) {
      found.child.kill(stopOptions.hard === true ? "SIGKILL" : "SIGTERM")
    }
    const timer = setTimeout(() => found.child.kill("SIGKILL"), 30_000)
    const code = await found.exited
    clearTimeout(timer)
    return code
  }

  const startProcess = async (name: string) => {
    const index = processes.findIndex((p) => p.name === name)
    if (index === -1) throw new Error(`no process ${name}`)
    if (isRunning(processes[index]!)) throw new Error(`${name} is running`)
    const started = processes[index] = spawnProcess(plan[index]!)
    await untilRegistered(started, [started])
    return started.child.pid!
  }

  const pauseProcess = async (name: string, ms: number) => {
    const found = processes.find((p) => p.name === name)
    const pid = found?.child.pid
    if (found === undefined || pid === undefined) throw new Error(`no process ${name}`)
    if (!isRunning(found)) throw new Error(`${name} is not running`)
    if (!Number.isSafeInteger(ms) || ms < 1 || ms > 60_000) throw new Error(`a pause of 1 to 60000 ms, not ${ms}`)
    process.kill(pid, "SIGSTOP")
    paused.add(pid)
    try {
      await new Promise((resolve) => setTimeout(resolve, ms))
    } finally {
      paused.delete(pid)
      process.kill(pid, "SIGCONT")
    }
    return pid
  }

  const stop = async () => {
    // The API and gateways first (no new work), then the rest.
    const order = ["api", "ws", "chat", "consumer", "pusher", "db"]
    for (const service of order) {
      await Promise.all(processes.filter((p) => p.service === service).map((p) => stopProcess(p.name)))
    }
    await standIn?.stop()
  }

  try {
    // Each process in turn (they all start at once), by the instance id it logged. A process that
    // exits during start fails the start at once, naming it (see its output).
    for (const started of processes) await untilRegistered(started, processes)
    await waitFor("the API", async () => (await fetch("http://127.0.0.1:8080/health")).ok)
  } catch (error) {
    await stop()
    throw error
  }
  return { apiUrl: "http://127.0.0.1:8080", consulAddress, processes, stopProcess, startProcess, pauseProcess, stop }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const cluster = await startCluster({
    gateways: Number(process.env["CLUSTER_WS"] ?? 2),
    consumers: Number(process.env["CLUSTER_CONSUMERS"] ?? 2)
  })
  console.log("\nIM cluster ready:")
  for (const p of cluster.processes) console.log(`  ${p.name.padEnd(12)} pid ${String(p.child.pid).padEnd(8)} ${p.listens}`)
  console.log(`  registry     ${cluster.consulAddress}${process.env["CONSUL_HTTP_ADDR"] ? "" : " (loopback Consul stand-in)"}`)
  console.log("Ctrl-C stops them all.\n")
  let stopping = false
  const shutdown = () => {
    if (stopping) return
    stopping = true
    console.log("\nstopping the cluster…")
    cluster.stop().then(() => process.exit(0), (error) => {
      console.error(error)
      process.exit(1)
    })
  }
  process.on("SIGINT", shutdown)
  process.on("SIGTERM", shutdown)
}
