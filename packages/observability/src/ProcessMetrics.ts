import { Effect, Layer } from "effect"
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"
import { getHeapSpaceStatistics } from "node:v8"

/**
 * The process's own figures for `/metrics`, next to the services' metrics: how late the event
 * loop ran a timer (every service's work runs on it, so its delay is in every latency), the garbage
 * collector's pauses by kind, and the memory in use. While `layer` is alive it samples the
 * event-loop delay and observes GC; `exposition` renders what it has in the Prometheus text
 * format.
 */

const GC_KINDS: ReadonlyMap<number, string> = new Map([
  [constants.NODE_PERFORMANCE_GC_MINOR, "minor"],
  [constants.NODE_PERFORMANCE_GC_MAJOR, "major"],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, "incremental"],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, "weakcb"]
])

interface Monitor {
  readonly delay: ReturnType<typeof monitorEventLoopDelay>
  readonly gc: Map<string, { count: number; seconds: number }>
  readonly observer: PerformanceObserver
  /** Layers alive that use it: the last one to go stops it. */
  users: number
}

let monitor: Monitor | undefined

/** The sampling timer's period: Node's default, 100 times a second. */
const RESOLUTION_MS = 10

const start = (): Monitor => {
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
  delay.enable()
  const gc = new Map<string, { count: number; seconds: number }>()
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as PerformanceEntry & { readonly detail?: { readonly kind?: number } }).detail
      const kind = GC_KINDS.get(detail?.kind ?? -1) ?? "other"
      let totals = gc.get(kind)
      if (totals === undefined) gc.set(kind, totals = { count: 0, seconds: 0 })
      totals.count++
      totals.seconds += entry.duration / 1_000
    }
  })
  observer.observe({ entryTypes: ["gc"] })
  return { delay, gc, observer, users: 0 }
}

/**
 * Samples the event loop and observes GC while alive: one monitor per process, however many
 * layers (standalone serves `/metrics` on its one server, a test may build several), stopped
 * when the last of them is released.
 */
export const layer: Layer.Layer<never> = Layer.effectDiscard(Effect.acquireRelease(
  Effect.sync(() => {
    monitor ??= start()
    monitor.users++
  }),
  () =>
    Effect.sync(() => {
      if (monitor === undefined || --monitor.users > 0) return
      monitor.delay.disable()
      monitor.observer.disconnect()
      monitor = undefined
    })
))

const QUANTILES = [0.5, 0.9, 0.99, 0.999] as const

/** The process's figures as Prometheus text; the event loop and GC only while `layer` is alive. */
export const exposition = (): string => {
  const memory = process.memoryUsage()
  const lines = [
    "# HELP im_process_resident_memory_bytes Resident memory of the process (RSS), in bytes.",
    "# TYPE im_process_resident_memory_bytes gauge",
    `im_process_resident_memory_bytes ${memory.rss}`,
    "# HELP im_process_heap_used_bytes JavaScript heap in use, in bytes.",
    "# TYPE im_process_heap_used_bytes gauge",
    `im_process_heap_used_bytes ${memory.heapUsed}`,
    "# HELP im_process_heap_space_bytes The JavaScript heap by V8 space: memory committed to it, its pages in RAM, and the part its objects use.",
    "# TYPE im_process_heap_space_bytes gauge",
    ...getHeapSpaceStatistics().flatMap((space) => [
      `im_process_heap_space_bytes{space="${space.space_name}",of="committed"} ${space.space_size}`,
      `im_process_heap_space_bytes{space="${space.space_name}",of="resident"} ${space.physical_space_size}`,
      `im_process_heap_space_bytes{space="${space.space_name}",of="used"} ${space.space_used_size}`
    ])
  ]
  if (monitor !== undefined) {
    const { delay, gc } = monitor
    // The histogram holds the time between the timer's runs: how late one ran is that less the period.
    const seconds = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1e3 : 0)
    lines.push(
      "# HELP im_event_loop_delay_seconds How late a timer due every 10 ms ran, since the metrics started.",
      "# TYPE im_event_loop_delay_seconds summary",
      ...QUANTILES.map((q) => `im_event_loop_delay_seconds{quantile="${q}"} ${seconds(delay.count === 0 ? 0 : delay.percentile(q * 100))}`),
      `im_event_loop_delay_seconds_sum ${delay.count === 0 ? 0 : seconds(delay.mean) * delay.count}`,
      `im_event_loop_delay_seconds_count ${delay.count}`,
      "# HELP im_event_loop_delay_max_seconds The longest of those delays.",
      "# TYPE im_event_loop_delay_max_seconds gauge",
      `im_event_loop_delay_max_seconds ${seconds(delay.count === 0 ? 0 : delay.max)}`,
      "# HELP im_gc_pause_seconds_total Time the garbage collector paused the process, by kind.",
      "# TYPE im_gc_pause_seconds_total counter",
      ...[...gc].map(([kind, totals]) => `im_gc_pause_seconds_total{kind="${kind}"} ${totals.seconds}`),
      "# HELP im_gc_pauses_total Garbage-collector pauses, by kind.",
      "# TYPE im_gc_pauses_total counter",
      ...[...gc].map(([kind, totals]) => `im_gc_pauses_total{kind="${kind}"} ${totals.count}`)
    )
  }
  return lines.join("\n") + "\n"
}
