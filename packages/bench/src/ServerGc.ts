/**
 * The servers' garbage-collector pauses over a run, from their `/metrics` (`im_gc_pauses_total`
 * and `im_gc_pause_seconds_total` by kind, docs/observability.md): read before the sending
 * starts and after the drain, so that a run's latency can be read beside what the collector
 * took meanwhile (docs/benchmarks.md: standalone's slow seconds are its full collections).
 * A process's main thread only: standalone's PGlite worker collects on its own.
 */

/** Pauses of one kind: `minor` (scavenges), `major` (full collections), `incremental`, `weakcb`. */
export interface Pauses {
  readonly count: number
  readonly seconds: number
}

export type GcTotals = ReadonlyMap<string, Pauses>

export interface ServerGc {
  readonly name: string
  /** Pauses during the run, by kind; null when the process's metrics could not be read. */
  readonly pauses: Readonly<Record<string, Pauses>> | null
}

const SERIES = /^im_gc_(pauses_total|pause_seconds_total)\{kind="([a-z]+)"\} (\S+)$/

/** The totals by kind in a Prometheus text; kinds not there yet (no pause so far) are absent. */
export const parseGc = (text: string): GcTotals => {
  const totals = new Map<string, { count: number; seconds: number }>()
  for (const line of text.split("\n")) {
    const match = SERIES.exec(line.trim())
    if (match === null) continue
    const value = Number(match[3])
    if (!Number.isFinite(value)) continue
    const kind = totals.get(match[2]!) ?? { count: 0, seconds: 0 }
    if (match[1] === "pauses_total") kind.count = value
    else kind.seconds = value
    totals.set(match[2]!, kind)
  }
  return totals
}

/** What was added between two readings of the same process (a kind first seen after counts from 0). */
export const gcBetween = (before: GcTotals, after: GcTotals): Record<string, Pauses> =>
  Object.fromEntries(
    [...after].map(([kind, { count, seconds }]) => {
      const earlier = before.get(kind) ?? { count: 0, seconds: 0 }
      return [kind, { count: count - earlier.count, seconds: Math.round((seconds - earlier.seconds) * 1000) / 1000 }]
    })
  )

/** A process's GC totals, or undefined when its metrics do not answer (in 2 s). */
export const readGc = async (metricsUrl: string): Promise<GcTotals | undefined> => {
  try {
    const response = await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) })
    return response.ok ? parseGc(await response.text()) : undefined
  } catch {
    return undefined
  }
}

const ms = (seconds: number) => `${Math.round(seconds * 1000)} ms`

/** `standalone: 5 major (92 ms), 180 minor (1190 ms)`, one process a line. */
export const formatServerGc = (servers: ReadonlyArray<ServerGc>): ReadonlyArray<string> =>
  servers.map(({ name, pauses }) =>
    pauses === null
      ? `${name}: not read`
      : `${name}: ${
        ["major", "minor", "incremental"]
          .filter((kind) => (pauses[kind]?.count ?? 0) > 0)
          .map((kind) => `${pauses[kind]!.count} ${kind} (${ms(pauses[kind]!.seconds)})`)
          .join(", ") || "no pause"
      }`
  )
