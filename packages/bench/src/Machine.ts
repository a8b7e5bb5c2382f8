/** The machine a run is on, and the memory of the processes it measures. */
import { readdirSync, readFileSync } from "node:fs"
import * as os from "node:os"

export const machine = () => ({
  cores: os.availableParallelism(),
  cpu: os.cpus()[0]?.model ?? "unknown",
  memory_mb: Math.round(os.totalmem() / 2 ** 20),
  os: `${os.type()} ${os.release()}`,
  node: process.version
})

/** VmRSS of a process in bytes, from /proc/<pid>/status; undefined when it cannot be read. */
export const rssOf = (pid: number): number | undefined => {
  try {
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return match === null ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The summed RSS of `pids` once it has settled: waits `settleMs` (the servers' garbage collector
 * runs on its own; we cannot trigger it from outside), then takes the median of three samples a
 * second apart.
 */
export const settledRss = async (pids: ReadonlyArray<number>, settleMs = 5_000): Promise<number | undefined> => {
  await sleep(settleMs)
  const samples: Array<number> = []
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(1_000)
    const values = pids.map(rssOf)
    if (values.some((v) => v === undefined)) return undefined
    samples.push(values.reduce((a, b) => a! + b!, 0)!)
  }
  return samples.sort((a, b) => a - b)[1]
}

/** CPU ticks (user + system) of every process, and of the whole machine, at one moment. */
export interface CpuSample {
  readonly at: number
  /** Machine: busy and total ticks over all cores, from /proc/stat. */
  readonly busy: number
  /** irq + softirq ticks, and steal (a hypervisor's other guests). */
  readonly irq: number
  readonly steal: number
  readonly total: number
  readonly processes: ReadonlyMap<number, { readonly ticks: number; readonly label: string }>
}

const TICKS_PER_S = 100

const labelOf = (pid: number, comm: string): string => {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter((a) => a !== "")
    if (comm === "java" && argv.some((a) => a.includes("kafka"))) return "kafka(java)"
    // For node (and java), the first argument that is not an option names what runs.
    const what = argv.slice(1).find((a) => !a.startsWith("-"))
    const short = what === undefined ? "" : what.includes("/packages/") ? what.slice(what.indexOf("/packages/") + 1) : what.split("/").slice(-2).join("/")
    return `${comm}${short === "" ? "" : ` ${short}`}`.slice(0, 70)
  } catch {
    return comm
  }
}

export const cpuSample = (): CpuSample => {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
  const idle = fields[3]! + (fields[4] ?? 0)
  // irq + softirq (network interrupts: loopback traffic is charged here, not to a process) and steal.
  const irq = (fields[5] ?? 0) + (fields[6] ?? 0)
  const steal = fields[7] ?? 0
  const processes = new Map<number, { ticks: number; label: string }>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const close = stat.lastIndexOf(")")
      const comm = stat.slice(stat.indexOf("(") + 1, close)
      const rest = stat.slice(close + 2).split(" ")
      // After "pid (comm) ", utime and stime are the 12th and 13th fields.
      const ticks = Number(rest[11]) + Number(rest[12])
      processes.set(Number(entry), { ticks, label: labelOf(Number(entry), comm) })
    } catch {
      // The process ended meanwhile.
    }
  }
  return { at: Date.now(), busy: total - idle, irq, steal, total, processes }
}

export interface CpuUse {
  readonly seconds: number
  /** Machine busy time over the interval, % of all cores. */
  readonly machine_busy_pct: number
  /** Interrupt handling (irq + softirq), % of one core: not charged to any process. */
  readonly irq_core_pct: number
  /** Time a hypervisor gave to others, % of one core. */
  readonly steal_core_pct: number
  /** Busy time that neither a process alive at the end nor interrupts account for, % of one core. */
  readonly ended_processes_core_pct: number
  /** The processes that used the most CPU, % of one core. */
  readonly processes: ReadonlyArray<{ readonly name: string; readonly pid: number; readonly cpu_s: number; readonly core_pct: number }>
}

/**
 * Who used the CPU between two samples. The processes `names` labels (the bench's own and the
 * servers it started) are listed one by one; the others are summed by command (e.g. `postgres`,
 * one process per connection) with how many there were.
 */
export const cpuUse = (before: CpuSample, after: CpuSample, names: ReadonlyMap<number, string>, top = 16): CpuUse => {
  const seconds = (after.at - before.at) / 1000
  const byName = new Map<string, { name: string; pids: Array<number>; ticks: number }>()
  for (const [pid, now] of after.processes) {
    const ticks = now.ticks - (before.processes.get(pid)?.ticks ?? 0)
    if (ticks <= 0) continue
    const name = names.get(pid) ?? now.label.split(" ")[0]!
    const key = names.has(pid) ? `pid ${pid}` : name
    let entry = byName.get(key)
    if (entry === undefined) byName.set(key, entry = { name, pids: [], ticks: 0 })
    entry.pids.push(pid)
    entry.ticks += ticks
  }
  const used = [...byName.values()].map((entry) => {
    const cpuS = entry.ticks / TICKS_PER_S
    return {
      name: entry.pids.length > 1 ? `${entry.name} (${entry.pids.length} processes)` : entry.name,
      pid: entry.pids[0]!,
      cpu_s: Math.round(cpuS * 10) / 10,
      core_pct: Math.round((cpuS / seconds) * 100)
    }
  })
  const ticks = Math.max(1, after.total - before.total)
  const busyPct = ((after.busy - before.busy) / ticks) * 100
  const cores = os.availableParallelism()
  const corePct = (delta: number) => (delta / ticks) * cores * 100
  const irqCorePct = corePct(after.irq - before.irq)
  const stealCorePct = corePct(after.steal - before.steal)
  const listedCoreS = used.reduce((n, p) => n + p.cpu_s, 0)
  return {
    seconds: Math.round(seconds * 10) / 10,
    machine_busy_pct: Math.round(busyPct),
    irq_core_pct: Math.round(irqCorePct),
    steal_core_pct: Math.round(stealCorePct),
    // Busy time nothing above accounts for: processes that ended during the interval (other work's test runs, …).
    ended_processes_core_pct: Math.max(0, Math.round(busyPct * cores - (listedCoreS / seconds) * 100 - irqCorePct - stealCorePct)),
    processes: used.sort((a, b) => b.core_pct - a.core_pct || b.cpu_s - a.cpu_s).slice(0, top)
  }
}

const perMessage = (cpuS: number, messages: number) => ((cpuS * 1000) / messages).toFixed(3)

/** `messages` handled in the interval: each process's CPU milliseconds per message, and the machine's. */
export const formatCpuUse = (use: CpuUse, messages = 0): string =>
  [
    `cpu over ${use.seconds} s: machine ${use.machine_busy_pct}% busy (of ${os.availableParallelism()} cores)` +
    (messages > 0 ? `, ${perMessage(use.machine_busy_pct / 100 * os.availableParallelism() * use.seconds, messages)} ms of CPU per message` : "") +
    `; by process (% of one core${messages > 0 ? ", CPU ms per message" : ""}):`,
    ...use.processes.map((p) =>
      `    ${String(p.core_pct).padStart(4)}%  ${messages > 0 ? `${perMessage(p.cpu_s, messages).padStart(7)} ms  ` : ""}${p.name} (pid ${p.pid})`
    ),
    `    ${String(use.irq_core_pct).padStart(4)}%  interrupts (irq + softirq: loopback network traffic is charged here)`,
    ...(use.steal_core_pct > 0 ? [`    ${String(use.steal_core_pct).padStart(4)}%  steal (the hypervisor's other guests)`] : []),
    `    ${String(use.ended_processes_core_pct).padStart(4)}%  processes that ended meanwhile (not this run's)`
  ].join("\n")
