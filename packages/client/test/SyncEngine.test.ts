import { describe, expect, it } from "vitest"
import { type PullRange, SyncEngine } from "../src/SyncEngine.ts"
import type { InboxEntry, PullPage } from "../src/Wire.ts"

const entry = (seq: number, serverId = `m_${seq}`): InboxEntry => ({
  seq,
  message: {
    server_id: serverId,
    local_id: `l_${serverId}`,
    sender_id: "u_alice",
    kind: "single",
    receiver_id: "u_bob",
    content_type: "text",
    content: `hello ${seq}`,
    create_time: 1_000,
    send_time: 1_001
  }
})

const page = (seqs: ReadonlyArray<number>, through: number, has_more = false): PullPage => ({
  entries: seqs.map((seq) => entry(seq)),
  through,
  has_more
})

const span = (range: PullRange) => [range.after, range.until] as const

/** An engine at `seq`, connected, the server's newest equal to it. */
const synced = (seq = 0): SyncEngine => {
  const engine = new SyncEngine(seq)
  engine.connected()
  engine.newest(seq)
  return engine
}

describe("SyncEngine on connect", () => {
  it("pulls nothing when the server's newest equals the local seq", () => {
    const engine = new SyncEngine(7)
    engine.connected()
    expect(engine.synced).toBe(false) // the newest is not known yet
    const step = engine.newest(7)
    expect(step).toEqual({ store: [], pulls: [] })
    expect(engine.seq).toBe(7)
    expect(engine.synced).toBe(true)
  })

  it("pulls (L, newest] page by page, after = through while has_more", () => {
    const engine = new SyncEngine(2)
    engine.connected()
    const [first] = engine.newest(9).pulls
    expect(span(first!)).toEqual([2, 9])

    const second = engine.pulled(first!, page([3, 4, 5], 5, true))
    expect(second.store.map((e) => e.seq)).toEqual([3, 4, 5])
    expect(engine.seq).toBe(5)
    expect(second.pulls.map(span)).toEqual([[5, 9]])
    expect(engine.synced).toBe(false)

    const last = engine.pulled(second.pulls[0]!, page([6, 9], 9))
    expect(last.pulls).toEqual([])
    expect(engine.seq).toBe(9)
    expect(engine.synced).toBe(true)
  })

  it("settles numbers a pull answer's through says are skipped for good", () => {
    const engine = new SyncEngine(0)
    engine.connected()
    const [pull] = engine.newest(10).pulls
    engine.pulled(pull!, page([1, 2, 10], 10)) // 3..9 skipped
    expect(engine.seq).toBe(10)
    expect(engine.synced).toBe(true)
  })

  it("aligns the local seq down when the server is behind what was held at connect", () => {
    const engine = synced(10)
    engine.pushed(entry(14), false) // held above the gap (10, 13]
    engine.disconnected()
    engine.connected()
    expect(engine.newest(5)).toEqual({ store: [], pulls: [] })
    expect(engine.seq).toBe(5)
    expect(engine.settledAbove).toEqual([]) // held numbers of the wrong copy no longer count
    expect(engine.synced).toBe(true)
    engine.pushed(entry(6, "m_new"), false)
    expect(engine.seq).toBe(6)
  })

  it("does not align down when pushes of this connection got ahead of the newest answer", () => {
    const engine = new SyncEngine(3)
    engine.connected()
    engine.pushed(entry(4), false)
    engine.pushed(entry(5), false)
    expect(engine.newest(4).pulls).toEqual([]) // answered before 5 was stored
    expect(engine.seq).toBe(5)
    expect(engine.synced).toBe(true)
  })

  it("ignores a newest answer while not connected", () => {
    const engine = new SyncEngine(3)
    expect(engine.newest(10)).toEqual({ store: [], pulls: [] })
    expect(engine.inFlight).toEqual([])
  })
})

describe("SyncEngine on a pushed entry", () => {
  it("ignores an entry whose server_id is already held", () => {
    const engine = synced(3)
    expect(engine.pushed(entry(9), true)).toEqual({ store: [], pulls: [] })
    expect(engine.pushed(entry(4), true)).toEqual({ store: [], pulls: [] })
    expect(engine.seq).toBe(3)
    expect(engine.inFlight).toEqual([])
  })

  it("stores seq = L+1 and raises L", () => {
    const engine = synced(3)
    const step = engine.pushed(entry(4), false)
    expect(step.store.map((e) => e.seq)).toEqual([4])
    expect(step.pulls).toEqual([])
    expect(engine.seq).toBe(4)
  })

  it("stores an unknown entry at or below L without moving L or pulling", () => {
    const engine = synced(8)
    const step = engine.pushed(entry(5, "m_late"), false)
    expect(step.store.map((e) => e.message.server_id)).toEqual(["m_late"])
    expect(step.pulls).toEqual([])
    expect(engine.seq).toBe(8)
  })

  it("stores an entry above L+1, pulls the gap (L, seq-1], and moves over it once the gap is settled", () => {
    const engine = synced(3)
    const step = engine.pushed(entry(7), false)
    expect(step.store.map((e) => e.seq)).toEqual([7])
    expect(step.pulls.map(span)).toEqual([[3, 6]])
    expect(engine.seq).toBe(3)
    expect(engine.settledAbove).toEqual([[7, 7]])

    engine.pulled(step.pulls[0]!, page([4, 6], 6)) // 5 skipped
    expect(engine.seq).toBe(7)
    expect(engine.settledAbove).toEqual([])
    expect(engine.synced).toBe(true)
  })

  it("moves L over held entries when the missing one arrives by push", () => {
    const engine = synced(0)
    engine.pushed(entry(3), false)
    engine.pushed(entry(2), false)
    expect(engine.seq).toBe(0)
    engine.pushed(entry(1), false)
    expect(engine.seq).toBe(3)
  })

  it("never issues a pull overlapping one in flight", () => {
    const engine = synced(0)
    expect(engine.pushed(entry(5), false).pulls.map(span)).toEqual([[0, 4]])
    expect(engine.pushed(entry(8), false).pulls.map(span)).toEqual([[5, 7]])
    expect(engine.pushed(entry(6), false).pulls).toEqual([]) // (0,4] and (5,7] cover it
    expect(engine.pushed(entry(12), false).pulls.map(span)).toEqual([[8, 11]])
    expect(engine.inFlight.map(span)).toEqual([[0, 4], [5, 7], [8, 11]])
  })

  it("asks only for what a connect pull does not already cover, and the reverse", () => {
    const engine = new SyncEngine(0)
    engine.connected()
    const gap = engine.pushed(entry(6), false).pulls // pushed before the newest answer
    expect(gap.map(span)).toEqual([[0, 5]])
    expect(engine.newest(9).pulls.map(span)).toEqual([[6, 9]])
  })
})

describe("SyncEngine on pull answers", () => {
  it("stores every entry of a page, leaving dedup to the store", () => {
    const engine = new SyncEngine(0)
    engine.connected()
    const [pull] = engine.newest(2).pulls
    expect(engine.pulled(pull!, page([1, 2], 2)).store.map((e) => e.seq)).toEqual([1, 2])
  })

  it("does not continue a page that made no progress", () => {
    const engine = new SyncEngine(0)
    engine.connected()
    const [pull] = engine.newest(5).pulls
    const step = engine.pulled(pull!, page([], 0, true))
    expect(step.pulls).toEqual([])
    expect(engine.synced).toBe(false)
    expect(engine.needsRetry).toBe(true)
  })

  it("retries what an answer fell short of", () => {
    const engine = synced(0)
    const [gap] = engine.pushed(entry(5), false).pulls
    engine.pulled(gap!, page([1, 2], 2)) // 3 not settled yet on the server
    expect(engine.seq).toBe(2)
    expect(engine.needsRetry).toBe(true)
    const retry = engine.retry()
    expect(retry.pulls.map(span)).toEqual([[2, 4]])
    expect(engine.needsRetry).toBe(false)
    engine.pulled(retry.pulls[0]!, page([3], 4))
    expect(engine.seq).toBe(5)
    expect(engine.synced).toBe(true)
  })

  it("forgets a failed pull so the numbers can be asked again", () => {
    const engine = synced(0)
    const [gap] = engine.pushed(entry(4), false).pulls
    engine.pullFailed(gap!)
    expect(engine.inFlight).toEqual([])
    expect(engine.pushed(entry(6), false).pulls.map(span)).toEqual([[0, 3], [4, 5]])
  })

  it("uses a late answer of a lost connection but does not continue it", () => {
    const engine = new SyncEngine(0)
    engine.connected()
    const [old] = engine.newest(10).pulls
    engine.disconnected()
    engine.connected()
    const [fresh] = engine.newest(10).pulls
    expect(span(fresh!)).toEqual([0, 10])

    const late = engine.pulled(old!, page([1, 2], 2, true))
    expect(late.store.map((e) => e.seq)).toEqual([1, 2])
    expect(late.pulls).toEqual([])
    expect(engine.seq).toBe(2)
    expect(engine.inFlight).toEqual([fresh]) // the current pull is still awaited

    engine.pulled(fresh!, page([1, 2, 3, 10], 10))
    expect(engine.seq).toBe(10)
    expect(engine.synced).toBe(true)
  })

  it("continues a page only over numbers not settled meanwhile", () => {
    const engine = new SyncEngine(0)
    engine.connected()
    const [pull] = engine.newest(6).pulls
    engine.pushed(entry(7), false) // a gap pull would be (0, 6]: already in flight
    expect(engine.inFlight).toHaveLength(1)
    engine.pushed(entry(5), false)
    const next = engine.pulled(pull!, page([1, 2], 2, true)).pulls
    expect(next.map(span)).toEqual([[2, 4], [5, 6]])
  })
})
