import { Effect, Layer } from "effect"
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"

/**
 * The process's own figures for `/metrics`, next to the services' metrics: how late the event
 * loop ran (every service's work runs on it, so its delay is in every latency), the garbage
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
}

let monitor: Monitor | undefined

const start = (): Monitor => {
  // 10 ms is Node's default resolution: a timer that fires 100 times a second.
  const delay = monitorEventLoopDelay({ resolution: 10 })
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
  return { delay, gc, observer }
}

/** Samples the event loop and observes GC while alive (one monitor per process, however many layers). */
export const layer: Layer.Layer<never> = Layer.effectDiscard(Effect.acquireRelease(
  Effect.sync(() => {
    const own = monitor === undefined
    if (own) monitor = start()
    return own
  }),
  (own) =>
    Effect.sync(() => {
      if (!own || monitor === undefined) return
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
    `im_process_heap_used_bytes ${memory.heapUsed}`
  ]
  if (monitor !== undefined) {
    const { delay, gc } = monitor
    const seconds = (ns: number) => (Number.isFinite(ns) ? ns / 1e9 : 0)
    lines.push(
      "# HELP im_event_loop_delay_seconds How late the event loop ran its timers since the process started (sampled every 10 ms).",
      "# TYPE im_event_loop_delay_seconds summary",
      ...QUANTILES.map((q) => `im_event_loop_delay_seconds{quantile="${q}"} ${seconds(delay.count === 0 ? 0 : delay.percentile(q * 100))}`),
      `im_event_loop_delay_seconds_sum ${seconds(delay.count === 0 ? 0 : delay.mean * delay.count)}`,
      `im_event_loop_delay_seconds_count ${delay.count}`,
      "# HELP im_event_loop_delay_max_seconds The longest event-loop delay since the process started.",
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
