/** The machine a run is on, and the memory of the processes it measures. */
import { readFileSync } from "node:fs"
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
