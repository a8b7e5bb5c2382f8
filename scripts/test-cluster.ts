/**
 * `npm run test:cluster`: starts a cluster (2 gateways, 2 consumers) on the local stack with the
 * settings the end-to-end tests need, runs the same end-to-end test files as standalone against
 * it, then the fault tests (which stop and kill its processes), and stops it. The local stack
 * must be up (`npm run infra:up`, which the npm script runs first).
 *
 * The tests reach the cluster through IM_E2E_URL / IM_E2E_WS_URL, read its log (IM_CLUSTER_LOG)
 * and its spans (IM_CLUSTER_TRACES, exported over OTLP to a receiver here), and stop, kill and
 * start again its processes, and restart parts of the local stack, through a small control
 * endpoint (IM_CLUSTER_CONTROL).
 */
import { spawn } from "node:child_process"
import { appendFileSync, mkdirSync, rmSync } from "node:fs"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { checkBacklog } from "../packages/bench/src/Backlog.ts"
import { OtlpReceiver } from "../packages/observability/testing/OtlpReceiver.ts"
import { startCluster } from "./cluster.ts"

const repoRoot = fileURLToPath(new URL("..", import.meta.url))
const logDir = `${repoRoot}test-results`
mkdirSync(logDir, { recursive: true })
const logFile = `${logDir}/cluster.log`
rmSync(logFile, { force: true })
// The services export their spans (OTLP/JSON) to a receiver here, which writes them to a file
// for the tracing test: one JSON span per line.
const tracesFile = `${logDir}/cluster-traces.jsonl`
rmSync(tracesFile, { force: true })
const traces = new OtlpReceiver({
  keep: false,
  onSpans: (spans) => appendFileSync(tracesFile, spans.map((span) => JSON.stringify(span) + "\n").join(""))
})
await traces.start()

/** Messages on the bus that the consumer groups have not committed (stored), over every topic. */
const backlog = async () => (await checkBacklog({ discard: false })).reduce((sum, { lag }) => sum + lag, 0)
/** How long the tests wait for the cluster to store what an earlier run left on the bus. */
const BACKLOG_WAIT_MS = 180_000

// An earlier cluster run on this stack (a benchmark that overloaded it) may have left accepted
// messages the consumers never stored: the cluster stores them first, and the tests' messages
// would wait behind them past the tests' timeouts. TEST_CLUSTER_DISCARD_BACKLOG=true moves the
// consumer groups past them instead (nobody but that run is owed them).
if (process.env["TEST_CLUSTER_DISCARD_BACKLOG"] === "true") {
  for (const { discarded, lag, topic } of await checkBacklog({ discard: true })) {
    if (discarded) console.log(`discarded ${lag} messages left on ${topic} by an earlier run (TEST_CLUSTER_DISCARD_BACKLOG)`)
  }
}

const cluster = await startCluster({
  env: {
    WS_TEST_HOOKS: "true",
    WS_HEARTBEAT_TIMEOUT: "2 seconds",
    RECALL_WINDOW: "2 seconds",
    WS_MAX_FRAME_BYTES: "65536",
    FILE_DOWNLOAD_URL_TTL: "5 seconds",
    LOG_LEVEL: "Debug",
    LOG_FORMAT: "json",
    // Faults show within seconds: a killed consumer leaves the group, a silent instance turns critical.
    KAFKA_SESSION_TIMEOUT: "6 seconds",
    KAFKA_HEARTBEAT_INTERVAL: "1 second",
    CONSUL_CHECK_TTL: "3 seconds",
    OTEL_EXPORTER_OTLP_ENDPOINT: traces.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "1000"
  },
  onOutput: (name, line) => appendFileSync(logFile, `[${name}] ${line}\n`)
})

const left = await backlog()
if (left > 0) {
  console.log(`the bus holds ${left} messages an earlier cluster run accepted and never stored; waiting for the consumers to store them`)
  const deadline = Date.now() + BACKLOG_WAIT_MS
  let now = left
  while (now > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    now = await backlog()
  }
  if (now > 0) {
    console.error(
      `${now} of them are still not stored after ${BACKLOG_WAIT_MS / 1000} s: the tests would wait behind them. ` +
        "Run again with TEST_CLUSTER_DISCARD_BACKLOG=true to move the consumer groups past them."
    )
    await cluster.stop()
    await traces.stop()
    process.exit(1)
  }
}

/** A script of scripts/infra with its arguments; resolves with its output, rejects with it. */
const infraScript = (part: string, action: string) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn("bash", [`${repoRoot}scripts/infra/${part}.sh`, action], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk) => void (output += String(chunk)))
    child.on("exit", (code) => code === 0 ? resolve(output) : reject(new Error(`infra ${part} ${action} failed (${code}): ${output}`)))
  })

/** A part of the stack the tests may restart; a server infra:up did not start is not theirs to stop. */
class NotOurs extends Error {}
const RESTARTABLE = new Set(["redis", "postgres", "kafka", "mongo", "s3"])
const restartPart = async (part: string) => {
  if (!RESTARTABLE.has(part)) throw new Error(`no part ${part} (restartable: ${[...RESTARTABLE].join(", ")})`)
  const pidOf = async () => {
    const status = await infraScript(part, "status")
    if (status.includes("not started by infra:up")) throw new NotOurs(`${part} was not started by infra:up; it is left alone`)
    return /pid (\d+)/.exec(status)?.[1] ?? "unknown"
  }
  const before = await pidOf()
  await infraScript(part, "down")
  await infraScript(part, "up")
  return { before, after: await pidOf() }
}

// Interrupted, it exits (the cluster's processes get the terminal's signal too), so that a
// process paused by a test is let go on (scripts/cluster.ts, on exit).
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130))

const control = createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://control")
  const name = url.searchParams.get("name") ?? ""
  const action = request.method === "POST" ? url.pathname.slice(1) : ""
  const run = action === "stop" || action === "kill"
    ? () => cluster.stopProcess(name, { hard: action === "kill" }).then((code) => ({ code }))
    : action === "start"
    ? () => cluster.startProcess(name).then((pid) => ({ pid }))
    : action === "restart-part"
    ? () => restartPart(name)
    : action === "pause"
    ? () => cluster.pauseProcess(name, Number(url.searchParams.get("ms"))).then((pid) => ({ pid }))
    : undefined
  if (run === undefined) {
    response.writeHead(404).end()
    return
  }
  appendFileSync(logFile, `[control] ${action === "kill" ? "kill -9" : action} ${name} at ${new Date().toISOString()}\n`)
  run().then(
    (result) => {
      appendFileSync(logFile, `[control] ${action} ${name} done at ${new Date().toISOString()}\n`)
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result))
    },
    (error) => response.writeHead(error instanceof NotOurs ? 409 : 400).end(String(error))
  )
})
await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve))
const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`
console.log(`cluster up (service logs in ${logFile}); running the end-to-end tests against ${cluster.apiUrl}`)

const env = {
  ...process.env,
  IM_E2E_URL: cluster.apiUrl,
  IM_E2E_WS_URL: "ws://127.0.0.1:8081/ws",
  IM_CLUSTER_LOG: logFile,
  IM_CLUSTER_CONTROL: controlUrl,
  IM_CLUSTER_TRACES: tracesFile
}

/** Runs vitest; a JSON report asked for with --outputFile gets `suffix` before its extension. */
const vitest = (files: ReadonlyArray<string>, extra: ReadonlyArray<string>, suffix: string) => {
  const args = process.argv.slice(2).map((arg) =>
    arg.startsWith("--outputFile=") && suffix !== "" ? arg.replace(/(\.json)?$/, `${suffix}$1`) : arg
  )
  const child = spawn(process.execPath, [`${repoRoot}node_modules/vitest/vitest.mjs`, "run", ...extra, ...files, ...args], {
    cwd: repoRoot,
    stdio: "inherit",
    env
  })
  return new Promise<number | null>((resolve) => child.on("exit", resolve))
}

// First everything that leaves the cluster as it is, one file at a time; then the faults, alone.
// Ten processes and the servers they use share the machine's cores with the tests: files run in
// parallel left the cluster a backlog that outlived them, and a test gets more time than
// in-process standalone gives it (vitest's default is 5 s).
const shared = await vitest(
  ["packages/e2e"],
  ["--exclude", "**/Restart.e2e.test.ts", "--exclude", "**/ClusterFaults.e2e.test.ts", "--testTimeout", "30000", "--no-file-parallelism"],
  ""
)
const faults = await vitest(["packages/e2e/test/ClusterFaults.e2e.test.ts"], [], "-faults")
control.close()
await cluster.stop()
await traces.stop()
process.exit(shared === 0 && faults === 0 ? 0 : 1)
