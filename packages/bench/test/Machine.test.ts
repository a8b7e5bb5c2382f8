import { availableParallelism } from "node:os"
import { describe, expect, it } from "vitest"
import { type CpuSample, cpuUse } from "../src/Machine.ts"

const sample = (at: number, busy: number, total: number, irq: number, processes: Array<[number, number, string]>): CpuSample => ({
  at,
  busy,
  irq,
  steal: 0,
  total,
  processes: new Map(processes.map(([pid, ticks, label]) => [pid, { ticks, label }]))
})

describe("cpuUse", () => {
  it("lists known processes one by one, sums the others by command, and keeps what no live process accounts for apart", () => {
    const cores = availableParallelism()
    // 10 s; the machine's ticks: 100 per second per core.
    const before = sample(0, 0, 0, 0, [[1, 100, "node x"], [2, 0, "postgres: a"], [3, 0, "postgres: b"], [4, 50, "java kafka"]])
    const after = sample(10_000, 10 * 100 * cores, 10 * 100 * cores, 100, [
      [1, 600, "node x"], // 5 s: 50% of a core
      [2, 100, "postgres: a"],
      [3, 200, "postgres: b"], // postgres together: 3 s
      [4, 50, "java kafka"], // idle: not listed
      [9, 100, "node y"] // started meanwhile: all its 1 s counts
    ])
    const use = cpuUse(before, after, new Map([[1, "standalone"]]))
    expect(use.seconds).toBe(10)
    expect(use.machine_busy_pct).toBe(100)
    expect(use.processes).toEqual([
      { name: "standalone", pid: 1, cpu_s: 5, core_pct: 50 },
      { name: "postgres: (2 processes)", pid: 2, cpu_s: 3, core_pct: 30 },
      { name: "node", pid: 9, cpu_s: 1, core_pct: 10 }
    ])
    expect(use.irq_core_pct).toBe(10)
    // All cores busy for 10 s; 9 s of it is in live processes, 1 s in interrupts.
    expect(use.ended_processes_core_pct).toBe(cores * 100 - 90 - 10)
  })
})
