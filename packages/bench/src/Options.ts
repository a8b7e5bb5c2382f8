import { parseArgs } from "node:util"

export type Scenario = "1to1" | "group" | "idle"

export interface Options {
  readonly scenario: Scenario
  /** `standalone`, `cluster` or the http URL of a running server. */
  readonly target: string
  readonly users: number
  /** Messages per second in total; 0 = as fast as acknowledged sends allow. */
  readonly rate: number
  readonly durationS: number
  /** Seconds at the start of sending left out of `latency_after_warmup_ms`. */
  readonly warmupS: number
  /** Group: members per group. */
  readonly members: number
  /** Group: how many groups (disjoint; users = groups × members). */
  readonly groups: number
  /** Group: members of each group that send (the first ones). */
  readonly senders: number
  /** Logins (register + login) in flight at once, over all workers. */
  readonly loginConcurrency: number
  readonly connections: number
  readonly workers: number
  /** Sends awaiting their `send_result`, per sender. */
  readonly inflight: number
  /** How long deliveries may still arrive after the last acknowledgement. */
  readonly drainS: number
  readonly json: string | undefined
  readonly profile: string | undefined
  /** For `idle` against a URL: the pid whose RSS to measure. */
  readonly serverPid: number | undefined
  /** Cluster: after stopping, move the consumers past what they had not stored. */
  readonly discardBacklog: boolean
  /** The checkout whose server code standalone/cluster run (default: this one). */
  readonly serverRoot: string | undefined
}

export const usage = `npm run bench -- [options]

  --scenario 1to1|group|idle   what to run (default 1to1)
  --target standalone|cluster|<http url>
                               standalone: spawn packages/standalone on a free port with a fresh
                               DATA_DIR; cluster: startCluster() (needs npm run infra:up);
                               a URL: attach to a running server (default standalone)
  --users N                    users (1to1: each sends to the next one; default 200;
                               idle: default 100; group: always groups × members)
  --rate R                     messages/s in total, 0 = as fast as acks allow (default 0);
                               group: messages, each of which becomes one inbox entry per member
  --duration S                 seconds of sending, or of holding idle connections (default 20)
  --warmup S                   seconds at the start of sending whose messages latency_after_warmup_ms
                               leaves out (they count everywhere else, latency_ms included; default 2)
  --inflight K                 sends awaiting send_result per sender (default 4)
  --drain S                    seconds to wait for late deliveries after sending (default 15)
  --members M                  group: members of each group, owner included (default 500, at most 2000)
  --groups G                   group: how many groups, each with its own members (default 1)
  --senders S                  group: members of each group that send (default 10)
  --login-concurrency C        register + login requests in flight at once, over all workers (default 16)
  --connections N              idle WebSockets to hold (idle; default 1000)
  --workers W                  load-generator processes (default 2)
  --json FILE                  write the results as JSON
  --profile DIR                run the server(s) it starts with node --cpu-prof into DIR and
                               summarize, per process, the top self-time functions of the
                               measured span (sending and draining, or holding idle sockets)
  --server-pid PID             idle against a URL: the process whose RSS to measure
  --server-root DIR            run standalone/cluster from another checkout (e.g. a clean
                               export of a commit, with node_modules linked); default this one
  --discard-backlog            cluster: after stopping it, move the consumer groups past the
                               accepted messages it had not stored (else they are replayed by the
                               next cluster start on this machine; the bench warns either way)
`

const positiveInt = (name: string, raw: string | undefined, fallback: number, min = 1): number => {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${raw}`)
  return value
}

export const parseOptions = (argv: ReadonlyArray<string>): Options | "help" => {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      scenario: { type: "string" },
      target: { type: "string" },
      users: { type: "string" },
      rate: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      inflight: { type: "string" },
      drain: { type: "string" },
      members: { type: "string" },
      groups: { type: "string" },
      senders: { type: "string" },
      "login-concurrency": { type: "string" },
      connections: { type: "string" },
      workers: { type: "string" },
      json: { type: "string" },
      profile: { type: "string" },
      "server-pid": { type: "string" },
      "server-root": { type: "string" },
      "discard-backlog": { type: "boolean" },
      help: { type: "boolean", short: "h" }
    },
    strict: true
  })
  if (values.help === true) return "help"
  const scenario = values.scenario ?? "1to1"
  if (scenario !== "1to1" && scenario !== "group" && scenario !== "idle") {
    throw new Error(`--scenario must be 1to1, group or idle, got ${scenario}`)
  }
  const target = values.target ?? "standalone"
  if (target !== "standalone" && target !== "cluster" && !/^https?:\/\//.test(target)) {
    throw new Error(`--target must be standalone, cluster or an http(s) URL, got ${target}`)
  }
  const members = positiveInt("members", values.members, 500, 2)
  if (members > 2000) throw new Error("--members is at most 2000 (the server's group limit)")
  const groups = positiveInt("groups", values.groups, 1)
  const senders = positiveInt("senders", values.senders, Math.min(10, members))
  if (senders > members) throw new Error(`--senders (${senders}) cannot be more than --members (${members})`)
  if (scenario === "group" && values.users !== undefined) {
    throw new Error("--users does not apply to group: the users are --groups × --members")
  }
  const users = scenario === "group" ? groups * members : positiveInt("users", values.users, scenario === "idle" ? 100 : 200, 2)
  const durationS = positiveInt("duration", values.duration, 20)
  if (durationS > 3600) throw new Error("--duration is at most 3600 s")
  const warmupS = positiveInt("warmup", values.warmup, Math.min(2, durationS - 1), 0)
  if (warmupS >= durationS) throw new Error(`--warmup (${warmupS}) must be less than --duration (${durationS})`)
  return {
    scenario,
    target: target.replace(/\/+$/, ""),
    users,
    rate: positiveInt("rate", values.rate, 0, 0),
    durationS,
    warmupS,
    members,
    groups,
    senders,
    loginConcurrency: Math.min(positiveInt("login-concurrency", values["login-concurrency"], 16), 256),
    connections: positiveInt("connections", values.connections, 1000),
    workers: Math.min(positiveInt("workers", values.workers, 2), 64),
    inflight: Math.min(positiveInt("inflight", values.inflight, 4), 1000),
    drainS: Math.min(positiveInt("drain", values.drain, 15), 600),
    json: values.json,
    profile: values.profile,
    serverPid: values["server-pid"] === undefined ? undefined : positiveInt("server-pid", values["server-pid"], 0),
    serverRoot: values["server-root"],
    discardBacklog: values["discard-backlog"] === true
  }
}
