import type { InboxEntry, PullPage } from "./Wire.ts"

/**
 * One pull the engine wants: the entries with `after < seq ≤ until`, page by page. `id` tells
 * the engine which of its pulls an answer belongs to (a pull of a lost session is forgotten).
 */
export interface PullRange {
  readonly id: number
  readonly after: number
  readonly until: number
}

/** What to do after an event: store these entries (those already held are skipped), start these pulls. */
export interface SyncStep {
  readonly store: ReadonlyArray<InboxEntry>
  readonly pulls: ReadonlyArray<PullRange>
}

/** Inclusive numbers `[lo, hi]`. */
export type Span = readonly [lo: number, hi: number]

const nothing: SyncStep = { store: [], pulls: [] }

/**
 * The sync rules of docs/protocol.md ("How a client stays in sync") as a deterministic state
 * machine: no sockets, no timers, no storage. The caller feeds it events in the order they
 * happened, carries out each returned `SyncStep`, and tells it how every pull ended.
 *
 * The local seq `seq` is the highest number such that every number at or below it is settled:
 * held, or skipped for good as a pull answer's `through` said. Numbers settled above `seq` (held
 * entries above a gap, pages of a pull that answered out of order) are kept as spans and `seq`
 * moves over them as soon as the numbers below are settled.
 *
 * Pulls in flight never overlap one another, and a pull never asks for a number already settled
 * when it is issued.
 */
export class SyncEngine {
  #seq: number
  /** Settled numbers above `seq + 1`: ascending, disjoint, not adjacent. */
  #settled: Array<Span> = []
  readonly #inFlight = new Map<number, PullRange>()
  #nextId = 1
  /** The highest number known to exist on the server: `seq` is synced when it reaches it. */
  #target: number
  /** The current connection: `seq` when it opened, and whether the server's newest is known. */
  #session: { readonly baseline: number; newestKnown: boolean } | undefined

  constructor(seq = 0) {
    this.#seq = seq
    this.#target = seq
  }

  /** The local synced seq. */
  get seq(): number {
    return this.#seq
  }

  /** Settled numbers above `seq + 1` (held entries above a gap), ascending. */
  get settledAbove(): ReadonlyArray<Span> {
    return this.#settled.slice()
  }

  /** The pulls in flight, ascending. */
  get inFlight(): ReadonlyArray<PullRange> {
    return [...this.#inFlight.values()].sort((a, b) => a.after - b.after)
  }

  /** The highest number known to exist on the server (its newest, pushed entries, pull answers). */
  get target(): number {
    return this.#target
  }

  /** Connected, the server's newest handled, nothing in flight, and `seq` reached every number known. */
  get synced(): boolean {
    return this.#session?.newestKnown === true && this.#inFlight.size === 0 && this.#seq >= this.#target
  }

  /**
   * Nothing is in flight yet `seq` is short of a number known to exist: a pull answered short
   * (the server had not settled some numbers yet). `retry()` pulls what is missing.
   */
  get needsRetry(): boolean {
    return this.#session?.newestKnown === true && this.#inFlight.size === 0 && this.#seq < this.#target
  }

  /** The socket got its `welcome`: ask the server's newest, then call `newest`. */
  connected(): void {
    this.#inFlight.clear()
    this.#session = { baseline: this.#seq, newestKnown: false }
  }

  /** The socket is gone: its pulls are forgotten (their late answers are still used, but not continued). */
  disconnected(): void {
    this.#inFlight.clear()
    this.#session = undefined
  }

  /**
   * The server's newest seq. Ahead: pull the difference. Behind what was held when this
   * connection opened: the local copy is wrong, align to the server. Behind only because pushes
   * of this connection arrived before the answer: nothing to do.
   */
  newest(newest: number): SyncStep {
    const session = this.#session
    if (session === undefined) return nothing
    session.newestKnown = true
    if (newest < session.baseline) {
      this.#seq = newest
      this.#target = newest
      this.#settled = []
      return nothing
    }
    this.#target = Math.max(this.#target, newest)
    return { store: [], pulls: this.#request(this.#seq + 1, newest) }
  }

  /**
   * A pushed entry; `held` says whether the local store has its `server_id` already. A new entry
   * is stored wherever it falls; one more than a number above `seq + 1` leaves a gap to pull.
   */
  pushed(entry: InboxEntry, held: boolean): SyncStep {
    if (held) return nothing
    this.#target = Math.max(this.#target, entry.seq)
    this.#settle(entry.seq, entry.seq)
    const pulls = entry.seq > this.#seq + 1 ? this.#request(this.#seq + 1, entry.seq - 1) : []
    return { store: [entry], pulls }
  }

  /** An answer to `range`: its entries are stored, `(after, through]` is settled, the next page follows. */
  pulled(range: PullRange, page: PullPage): SyncStep {
    const current = this.#inFlight.get(range.id) === range
    this.#inFlight.delete(range.id)
    for (const entry of page.entries) {
      this.#target = Math.max(this.#target, entry.seq)
      this.#settle(entry.seq, entry.seq)
    }
    this.#settle(range.after + 1, page.through)
    const progressed = page.through > range.after
    const pulls = current && page.has_more && progressed && page.through < range.until
      ? this.#request(page.through + 1, range.until)
      : []
    return { store: page.entries, pulls }
  }

  /** A pull that failed: forgotten, so a later event may ask for its numbers again. */
  pullFailed(range: PullRange): SyncStep {
    this.#inFlight.delete(range.id)
    return nothing
  }

  /** Pulls every number up to `target` that is neither settled nor in flight. */
  retry(): SyncStep {
    if (this.#session === undefined) return nothing
    return { store: [], pulls: this.#request(this.#seq + 1, this.#target) }
  }

  #settle(lo: number, hi: number): void {
    let from = Math.max(lo, this.#seq + 1)
    if (hi < from) return
    let to = hi
    const kept: Array<Span> = []
    let placed = false
    for (const span of this.#settled) {
      if (span[1] + 1 < from) kept.push(span)
      else if (to + 1 < span[0]) {
        if (!placed) kept.push([from, to])
        placed = true
        kept.push(span)
      } else {
        from = Math.min(from, span[0])
        to = Math.max(to, span[1])
      }
    }
    if (!placed) kept.push([from, to])
    while (kept.length > 0 && kept[0]![0] <= this.#seq + 1) {
      this.#seq = Math.max(this.#seq, kept.shift()![1])
    }
    this.#settled = kept
  }

  /** Starts pulls for the numbers of `[lo, hi]` that are neither settled nor in flight. */
  #request(lo: number, hi: number): Array<PullRange> {
    const covered: Array<Span> = [
      ...this.#settled,
      ...[...this.#inFlight.values()].map((range): Span => [range.after + 1, range.until])
    ].sort((a, b) => a[0] - b[0])
    const pulls: Array<PullRange> = []
    let next = Math.max(lo, this.#seq + 1)
    for (const [from, to] of covered) {
      if (next > hi) break
      if (to < next) continue
      if (from > next) pulls.push(this.#start(next - 1, Math.min(from - 1, hi)))
      next = Math.max(next, to + 1)
    }
    if (next <= hi) pulls.push(this.#start(next - 1, hi))
    return pulls
  }

  #start(after: number, until: number): PullRange {
    const range: PullRange = { id: this.#nextId++, after, until }
    this.#inFlight.set(range.id, range)
    return range
  }
}
