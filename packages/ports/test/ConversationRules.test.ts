import type { ServerId, UserId } from "@im/domain/Ids"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import {
  applyEntries,
  applyRead,
  type ConversationEntry,
  type ConversationState,
  countRuns,
  MAX_TRACKED_RUNS,
  MAX_TRACKED_UNREAD,
  normalizeRuns,
  toConversation
} from "../src/ConversationStore.ts"

const user = "u_a" as UserId

const entry = (seq: number, own: boolean): ConversationEntry => ({
  user_id: user,
  conversation: "g:g_team",
  seq,
  server_id: `m_${seq}` as ServerId,
  own
})

/** The rules as a plain list of unread seqs: what the runs must agree with. */
interface Model {
  last_seq: number
  read_seq: number
  unread: Array<number>
}

const modelEntries = (model: Model, entries: ReadonlyArray<ConversationEntry>) => {
  for (const e of entries) {
    if (e.seq <= model.last_seq) continue
    model.last_seq = e.seq
    if (e.own) {
      model.read_seq = e.seq
      model.unread = []
    } else {
      model.unread.push(e.seq)
    }
  }
  model.unread = model.unread.slice(-MAX_TRACKED_UNREAD)
}

const modelRead = (model: Model, seq: number) => {
  model.read_seq = Math.max(model.read_seq, Math.min(seq, model.last_seq))
  model.unread = model.unread.filter((unread) => unread > model.read_seq)
}

const expand = (state: ConversationState | undefined) =>
  (state?.unread ?? []).flatMap(([first, last]) => Array.from({ length: last - first + 1 }, (_, i) => first + i))

describe("conversation rules: unread seqs kept as runs", () => {
  it("property: batches of entries (with gaps, own entries and replays) and reads agree with a plain list of unread seqs", () => {
    const step = fc.oneof(
      fc.record({
        kind: fc.constant("entries" as const),
        // Gaps between seqs are other conversations' entries; a replay goes back.
        items: fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), own: fc.integer({ min: 0, max: 6 }).map((n) => n === 0) }), {
          maxLength: 20
        }),
        replayFrom: fc.option(fc.nat(30), { nil: undefined })
      }),
      fc.record({ kind: fc.constant("read" as const), back: fc.integer({ min: -5, max: 40 }) })
    )
    fc.assert(
      fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
        let state: ConversationState | undefined
        const model: Model = { last_seq: 0, read_seq: 0, unread: [] }
        let seq = 0
        for (const s of steps) {
          if (s.kind === "entries") {
            const start = s.replayFrom === undefined ? seq : Math.max(0, seq - s.replayFrom)
            let at = start
            const entries = s.items.map(({ gap, own }) => entry(at += gap, own))
            seq = Math.max(seq, at)
            state = applyEntries(state, entries)
            modelEntries(model, entries)
          } else if (state !== undefined) {
            state = applyRead(state, state.last_seq - s.back)
            modelRead(model, model.last_seq - s.back)
          }
          expect(expand(state)).toEqual(model.unread)
          expect(state?.read_seq ?? 0).toBe(model.read_seq)
          expect(state?.last_seq ?? 0).toBe(model.last_seq)
          if (state !== undefined) expect(toConversation("g:g_team", state).unread).toBe(model.unread.length)
          // Runs are ascending, disjoint and not adjacent (adjacent ones are one run).
          const runs = state?.unread ?? []
          runs.forEach(([first, last], i) => {
            expect(first).toBeLessThanOrEqual(last)
            if (i > 0) expect(first).toBeGreaterThan(runs[i - 1]![1] + 1)
          })
        }
      }),
      { numRuns: 300 }
    )
  })

  it("a group's thousands of unread entries are one run, and only the newest MAX_TRACKED_UNREAD are kept", () => {
    const entries = Array.from({ length: MAX_TRACKED_UNREAD + 500 }, (_, i) => entry(i + 1, false))
    const state = applyEntries(undefined, entries)!
    expect(state.unread).toEqual([[501, MAX_TRACKED_UNREAD + 500]])
    expect(countRuns(state.unread)).toBe(MAX_TRACKED_UNREAD)
    // One more batch extends the run and drops as many from its front.
    const next = applyEntries(state, [entry(MAX_TRACKED_UNREAD + 502, false)])!
    expect(next.unread).toEqual([[502, MAX_TRACKED_UNREAD + 500], [MAX_TRACKED_UNREAD + 502, MAX_TRACKED_UNREAD + 502]])
  })

  it("a conversation interleaved with others keeps its newest MAX_TRACKED_RUNS runs", () => {
    const entries = Array.from({ length: MAX_TRACKED_RUNS + 10 }, (_, i) => entry(2 * (i + 1), false))
    const state = applyEntries(undefined, entries)!
    expect(state.unread.length).toBe(MAX_TRACKED_RUNS)
    expect(state.unread[0]).toEqual([22, 22])
    expect(normalizeRuns(entries.map((e) => e.seq), 0)).toEqual(state.unread)
  })

  it("normalizeRuns: single seqs and runs, unordered, overlapping, at or below the read seq, make ascending disjoint runs above it", () => {
    expect(normalizeRuns([[7, 9], 3, [1, 2], 12, [8, 10], 11, 5], 2)).toEqual([[3, 3], [5, 5], [7, 12]])
    expect(normalizeRuns([[1, 4]], 4)).toEqual([])
  })
})
