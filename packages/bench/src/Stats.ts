/**
 * The pure accounting of a run: latency percentiles and, per (sender, receiver) pair, which of
 * the sender's numbered messages were lost, duplicated or reordered at the receiver.
 */

export interface LatencySummary {
  readonly count: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly max: number
  readonly mean: number
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
export const percentile = (sorted: ArrayLike<number>, p: number): number => {
  if (sorted.length === 0) return 0
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

const round = (value: number) => Math.round(value * 100) / 100

/** Percentiles of samples in any order (the input is not changed). */
export const summarize = (samples: ArrayLike<number>): LatencySummary => {
  const sorted = Float64Array.from(samples).sort()
  let sum = 0
  for (const value of sorted) sum += value
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted.length === 0 ? 0 : sorted[sorted.length - 1]!),
    mean: round(sorted.length === 0 ? 0 : sum / sorted.length)
  }
}

export interface SecondSummary extends LatencySummary {
  /** Seconds from `origin` to the start of this second. */
  readonly second: number
}

/**
 * Latencies by the second their message was sent in (`sendTimes[i]` for `latencies[i]`, ms on
 * the clock of `origin`): where in a run the slow messages were. Seconds with no sample are left out.
 */
export const bySecond = (
  latencies: ArrayLike<number>,
  sendTimes: ArrayLike<number>,
  origin: number
): ReadonlyArray<SecondSummary> => {
  if (latencies.length !== sendTimes.length) throw new RangeError(`${latencies.length} latencies but ${sendTimes.length} send times`)
  const buckets = new Map<number, Array<number>>()
  for (let i = 0; i < latencies.length; i++) {
    const second = Math.floor((sendTimes[i]! - origin) / 1000)
    let bucket = buckets.get(second)
    if (bucket === undefined) buckets.set(second, bucket = [])
    bucket.push(latencies[i]!)
  }
  return [...buckets].sort(([a], [b]) => a - b).map(([second, samples]) => ({ second, ...summarize(samples) }))
}

/** The latencies of the messages sent at or after `from` (`sendTimes[i]` for `latencies[i]`). */
export const sentFrom = (latencies: ArrayLike<number>, sendTimes: ArrayLike<number>, from: number): Float64Array => {
  if (latencies.length !== sendTimes.length) throw new RangeError(`${latencies.length} latencies but ${sendTimes.length} send times`)
  const out: Array<number> = []
  for (let i = 0; i < latencies.length; i++) if (sendTimes[i]! >= from) out.push(latencies[i]!)
  return Float64Array.from(out)
}

/** Joins several workers' samples into one array. */
export const concatSamples = (parts: ReadonlyArray<ArrayLike<number>>): Float64Array => {
  const out = new Float64Array(parts.reduce((n, part) => n + part.length, 0))
  let at = 0
  for (const part of parts) {
    out.set(part as ArrayLike<number>, at)
    at += part.length
  }
  return out
}

export interface PairAccount {
  /** Messages the sender had acknowledged (`send_result` ok). */
  readonly expected: number
  /** Distinct messages that arrived (acknowledged or not). */
  readonly delivered: number
  /** Acknowledged messages that never arrived. */
  readonly lost: number
  /** Arrivals of a message that had already arrived. */
  readonly duplicated: number
  /** First arrivals of a message after a later-sent message of the same pair had arrived. */
  readonly reordered: number
}

export const emptyAccount: PairAccount = { expected: 0, delivered: 0, lost: 0, duplicated: 0, reordered: 0 }

/**
 * One pair: `acked` are the per-pair numbers (1, 2, …, in send order) the sender had
 * acknowledged, `arrivals` the numbers in the order the receiver got them.
 */
export const accountPair = (acked: Iterable<number>, arrivals: ReadonlyArray<number>): PairAccount => {
  const seen = new Set<number>()
  let duplicated = 0
  let reordered = 0
  let highest = -Infinity
  for (const k of arrivals) {
    if (seen.has(k)) {
      duplicated++
      continue
    }
    seen.add(k)
    if (k < highest) reordered++
    else highest = k
  }
  let expected = 0
  let lost = 0
  for (const k of acked) {
    expected++
    if (!seen.has(k)) lost++
  }
  return { expected, delivered: seen.size, lost, duplicated, reordered }
}

export const addAccounts = (a: PairAccount, b: PairAccount): PairAccount => ({
  expected: a.expected + b.expected,
  delivered: a.delivered + b.delivered,
  lost: a.lost + b.lost,
  duplicated: a.duplicated + b.duplicated,
  reordered: a.reordered + b.reordered
})

export interface PairDetail extends PairAccount {
  readonly pair: string
}

/**
 * Every pair of a run: `acked` and `arrivals` keyed by the same pair key. A pair with arrivals
 * but nothing acknowledged still counts its duplicates and reorderings.
 */
export const accountPairs = (
  acked: ReadonlyMap<string, ArrayLike<number>>,
  arrivals: ReadonlyMap<string, ReadonlyArray<number>>
): { readonly total: PairAccount; readonly faulty: ReadonlyArray<PairDetail> } => {
  let total = emptyAccount
  const faulty: Array<PairDetail> = []
  for (const pair of new Set([...acked.keys(), ...arrivals.keys()])) {
    const account = accountPair(Array.from(acked.get(pair) ?? []), arrivals.get(pair) ?? [])
    total = addAccounts(total, account)
    if (account.lost + account.duplicated + account.reordered > 0) faulty.push({ pair, ...account })
  }
  return { total, faulty }
}

/**
 * A group run, at the members one worker holds: each member must get every message each *other*
 * sender of its group had acknowledged, once, in that sender's order (the order guarantee is
 * per sender within a group). `expected` lists, per member, the group pair keys (`s>gG`) it
 * must get; `arrivals` is keyed by `memberKey(member, pair)`. Arrivals at a member that expects
 * nothing of that pair are counted apart (`unexpected`), with their duplicates and reorderings.
 */
export const accountMembers = (
  acked: ReadonlyMap<string, ArrayLike<number>>,
  expected: Iterable<readonly [member: number, pairs: ReadonlyArray<string>]>,
  arrivals: ReadonlyMap<string, ReadonlyArray<number>>
): { readonly total: PairAccount; readonly faulty: ReadonlyArray<PairDetail>; readonly unexpected: number } => {
  let total = emptyAccount
  const faulty: Array<PairDetail> = []
  const covered = new Set<string>()
  const add = (key: string, account: PairAccount) => {
    total = addAccounts(total, account)
    if (account.lost + account.duplicated + account.reordered > 0) faulty.push({ pair: key, ...account })
  }
  for (const [member, pairs] of expected) {
    for (const pair of pairs) {
      const key = `${member}@${pair}`
      covered.add(key)
      add(key, accountPair(Array.from(acked.get(pair) ?? []), arrivals.get(key) ?? []))
    }
  }
  let unexpected = 0
  for (const [key, ks] of arrivals) {
    if (covered.has(key)) continue
    unexpected += ks.length
    add(key, accountPair([], ks))
  }
  return { total, faulty, unexpected }
}

/**
 * Per message (key `pair#k`): the lowest and highest send→delivery latency over the members that
 * got it, and how many did. A worker keeps one for its members; the main process merges them.
 */
export type Spread = Map<string, Float64Array>

export const recordSpread = (spread: Spread, key: string, latency: number) => {
  const entry = spread.get(key)
  if (entry === undefined) {
    spread.set(key, Float64Array.of(latency, latency, 1))
    return
  }
  if (latency < entry[0]!) entry[0] = latency
  if (latency > entry[1]!) entry[1] = latency
  entry[2]!++
}

export const mergeSpreads = (parts: ReadonlyArray<ReadonlyMap<string, Float64Array>>): Spread => {
  const merged: Spread = new Map()
  for (const part of parts) {
    for (const [key, [low, high, count]] of part) {
      const entry = merged.get(key)
      if (entry === undefined) merged.set(key, Float64Array.of(low!, high!, count!))
      else {
        entry[0] = Math.min(entry[0]!, low!)
        entry[1] = Math.max(entry[1]!, high!)
        entry[2]! += count!
      }
    }
  }
  return merged
}

/**
 * Send→delivery to the first member of each message, and to the last one of each message that
 * reached all `receivers` (its group's other members); `complete` counts those messages.
 */
export const summarizeSpread = (spread: ReadonlyMap<string, Float64Array>, receivers: number) => {
  const first: Array<number> = []
  const last: Array<number> = []
  for (const [low, high, count] of spread.values()) {
    first.push(low!)
    if (count! >= receivers) last.push(high!)
  }
  return { complete: last.length, first: summarize(first), last: summarize(last) }
}
