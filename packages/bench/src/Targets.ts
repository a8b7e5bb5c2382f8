/**
 * What a run talks to: a standalone server it spawns, a cluster it starts, or a server that runs
 * already. The ones it starts it also stops, whatever happens.
 */
import { spawn } from "node:child_process"
import { createWriteStream, mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { type Backlog, checkBacklog } from "./Backlog.ts"

export const repoRoot = fileURLToPath(new URL("../../..", import.meta.url))

/** A server process the bench started that ended on its own, before the bench stopped it. */
export interface ServerExit {
  readonly name: string
  readonly code: number | null
  readonly signal: string | null
}

export interface Target {
  readonly name: string
  readonly baseUrl: string
  /** The processes holding the WebSockets (for RSS), when known. */
  readonly gatewayPids: ReadonlyArray<number>
  /** pid → a name, for the profiles it writes. */
  readonly processNames: ReadonlyMap<number, string>
  readonly logFile: string | undefined
  /** The servers' Prometheus endpoints, by process name (for their GC pauses over a run). */
  readonly metrics: ReadonlyArray<{ readonly name: string; readonly url: string }>
  readonly stop: () => Promise<void>
  /** The processes it started that ended on their own (a crash); none known of a server attached to. */
  readonly exits: () => ReadonlyArray<ServerExit>
  /** Cluster: what the run left unconsumed on the bus, known once stopped. */
  readonly backlog?: () => ReadonlyArray<Backlog> | undefined
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })

const waitHealthy = async (baseUrl: string, timeoutMs: number, alive: () => boolean) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (!alive()) throw new Error("the server exited during start")
    const ok = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false)
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`${baseUrl} not healthy within ${timeoutMs} ms`)
}

/** The environment every server the bench starts gets: quiet logs unless LOG_LEVEL says otherwise. */
const serverEnv = () => ({ LOG_LEVEL: process.env["LOG_LEVEL"] ?? "Warn" })

export const startStandalone = async (runDir: string, profileDir: string | undefined, serverRoot: string): Promise<Target> => {
  const port = await freePort()
  const dataDir = mkdtempSync(join(tmpdir(), "im-bench-data-"))
  const logFile = join(runDir, "standalone.log")
  const log = createWriteStream(logFile)
  const child = spawn(
    process.execPath,
    [...(profileDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", profileDir]), "packages/standalone/src/main.ts"],
    {
      cwd: serverRoot,
      env: { ...process.env, ...serverEnv(), HOST: "127.0.0.1", PORT: String(port), DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  child.stdout!.pipe(log, { end: false })
  child.stderr!.pipe(log, { end: false })
  let stopped = false
  const exits: Array<ServerExit> = []
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      if (!stopped) exits.push({ name: "standalone", code, signal })
      resolve()
    })
  )
  const stop = async () => {
    if (stopped) return
    stopped = true
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    await exited
    clearTimeout(timer)
    log.end()
    rmSync(dataDir, { recursive: true, force: true })
  }
  const baseUrl = `http://127.0.0.1:${port}`
  try {
    await waitHealthy(baseUrl, 120_000, () => child.exitCode === null)
  } catch (error) {
    await stop()
    throw new Error(`standalone did not start (log: ${logFile}): ${(error as Error).message}`)
  }
  return {
    name: "standalone",
    baseUrl,
    gatewayPids: [child.pid!],
    processNames: new Map([[child.pid!, "standalone"]]),
    logFile,
    metrics: [{ name: "standalone", url: `${baseUrl}/metrics` }],
    stop,
    exits: () => exits
  }
}

export const startClusterTarget = async (
  runDir: string,
  profileDir: string | undefined,
  serverRoot: string,
  discardBacklog: boolean
): Promise<Target> => {
  const { startCluster } = await import(pathToFileURL(join(serverRoot, "scripts/cluster.ts")).href) as typeof import("../../../scripts/cluster.ts")
  const logFile = join(runDir, "cluster.log")
  const log = createWriteStream(logFile)
  const nodeOptions = [process.env["NODE_OPTIONS"] ?? "", profileDir === undefined ? "" : `--cpu-prof --cpu-prof-dir=${profileDir}`]
    .join(" ").trim()
  const cluster = await startCluster({
    env: { ...serverEnv(), ...(nodeOptions === "" ? {} : { NODE_OPTIONS: nodeOptions }) },
    onOutput: (name, line) => log.write(`[${name}] ${line}\n`)
  })
  let stopped = false
  const exits: Array<ServerExit> = []
  for (const p of cluster.processes) {
    p.child.once("exit", (code, signal) => {
      if (!stopped) exits.push({ name: p.name, code, signal })
    })
  }
  let backlogs: ReadonlyArray<Backlog> | undefined
  return {
    exits: () => exits,
    name: "cluster",
    backlog: () => backlogs,
    baseUrl: cluster.apiUrl,
    gatewayPids: cluster.processes.filter((p) => p.service === "ws").map((p) => p.child.pid!),
    processNames: new Map(cluster.processes.map((p) => [p.child.pid!, p.name])),
    logFile,
    // A checkout from before metricsUrl (--server-root) has none to read.
    metrics: cluster.processes.flatMap((p) => p.metricsUrl === undefined ? [] : [{ name: p.name, url: p.metricsUrl }]),
    stop: async () => {
      if (stopped) return
      stopped = true
      await cluster.stop()
      log.end()
      // Uncommitted messages would be replayed by the next cluster start on this machine (another
      // run, or the cluster tests): say so, and move past them when asked to.
      backlogs = await checkBacklog({ discard: discardBacklog }).catch((error) => {
        console.warn(`could not read the bus's backlog: ${(error as Error).message}`)
        return undefined
      })
      for (const backlog of backlogs ?? []) {
        if (backlog.lag === 0) continue
        console.warn(
          backlog.discarded
            ? `discarded ${backlog.lag} accepted messages the consumers had not stored (group ${backlog.group} moved to the end of ${backlog.topic})`
            : `WARNING: the cluster stopped with ${backlog.lag} accepted messages not stored (group ${backlog.group}, topic ${backlog.topic}); ` +
              "the next cluster start on this machine replays them. Run again with --discard-backlog to move past them."
        )
      }
    }
  }
}

export const attach = async (url: string, serverPid: number | undefined): Promise<Target> => {
  await waitHealthy(url, 10_000, () => true)
  return {
    name: url,
    baseUrl: url,
    gatewayPids: serverPid === undefined ? [] : [serverPid],
    processNames: new Map(),
    logFile: undefined,
    metrics: [{ name: url, url: `${url}/metrics` }],
    stop: async () => {},
    exits: () => []
  }
}

export const makeRunDir = () => mkdtempSync(join(tmpdir(), "im-bench-"))
