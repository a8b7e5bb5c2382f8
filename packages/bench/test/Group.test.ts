import { describe, expect, it } from "vitest"
import { encodeStamp, groupPairKey, memberKey } from "../src/Content.ts"
import { parseOptions } from "../src/Options.ts"
import { zeroCounters } from "../src/Messages.ts"
import { classify, NumberSet, Recorder } from "../src/Receive.ts"
import { accountMembers, mergeSpreads, recordSpread, type Spread, summarizeSpread } from "../src/Stats.ts"

const alice = { index: 1, id: "u_alice", group: 0 }
const chat = (over: Record<string, unknown>) => ({
  server_id: "m_1",
  sender_id: "u_bob",
  kind: "group",
  group_id: "g_0",
  content_type: "text",
  content: encodeStamp({ sender: 2, receiver: 0, toGroup: true, k: 5, sentAt: 1000.5 }),
  ...over
})

describe("classify", () => {
  it("takes another member's group message as a delivery of that sender's pair", () => {
    expect(classify(chat({}), alice)).toEqual({ kind: "delivery", pair: groupPairKey(2, 0), toGroup: true, k: 5, sentAt: 1000.5 })
  })

  it("ignores notices, even one whose content looks like a bench message", () => {
    expect(classify({ kind: "notice", sender_id: "u_bob", content: JSON.stringify({ type: "group_created", name: "x" }) }, alice))
      .toEqual({ kind: "ignored" })
    expect(classify(chat({ kind: "notice", content_type: "notice" }), alice)).toEqual({ kind: "ignored" })
  })

  it("ignores messages that are not the bench's", () => {
    expect(classify(chat({ content: "hello" }), alice)).toEqual({ kind: "ignored" })
    expect(classify(chat({ content: { file_id: "f_1" } }), alice)).toEqual({ kind: "ignored" })
    expect(classify(null, alice)).toEqual({ kind: "ignored" })
  })

  it("tells the sender's own copy apart", () => {
    const own = chat({ sender_id: "u_alice", content: encodeStamp({ sender: 1, receiver: 0, toGroup: true, k: 2, sentAt: 7 }) })
    expect(classify(own, alice)).toEqual({ kind: "own", pair: groupPairKey(1, 0), k: 2, sentAt: 7 })
  })

  it("flags a group message pushed to a user of another group, or as the wrong kind", () => {
    expect(classify(chat({}), { ...alice, group: 1 }).kind).toBe("foreign")
    expect(classify(chat({}), { ...alice, group: undefined }).kind).toBe("foreign")
    expect(classify(chat({ kind: "single" }), alice).kind).toBe("foreign")
  })

  it("handles one-to-one messages: for this user, or foreign", () => {
    const single = chat({ kind: "single", content: encodeStamp({ sender: 0, receiver: 1, toGroup: false, k: 3, sentAt: 9 }) })
    expect(classify(single, { ...alice, group: undefined })).toEqual({ kind: "delivery", pair: "0>1", toGroup: false, k: 3, sentAt: 9 })
    expect(classify(single, { index: 4, id: "u_x", group: undefined }).kind).toBe("foreign")
  })
})

describe("NumberSet", () => {
  it("adds each number once, however large", () => {
    const set = new NumberSet()
    expect(set.add(1)).toBe(true)
    expect(set.add(1)).toBe(false)
    expect(set.add(100_000)).toBe(true)
    expect(set.has(100_000)).toBe(true)
    expect(set.has(99_999)).toBe(false)
    expect(set.has(5_000_000)).toBe(false)
    expect(set.size).toBe(2)
  })
})

describe("accountMembers", () => {
  // Group 0: members 0 (sender), 1 (sender), 2; both senders' numbers 1..3 acknowledged.
  const acked = new Map([[groupPairKey(0, 0), Int32Array.from([1, 2, 3])], [groupPairKey(1, 0), Int32Array.from([1, 2, 3])]])
  const expected: Array<readonly [number, ReadonlyArray<string>]> = [
    [0, [groupPairKey(1, 0)]],
    [1, [groupPairKey(0, 0)]],
    [2, [groupPairKey(0, 0), groupPairKey(1, 0)]]
  ]
  const perfect = () =>
    new Map([
      [memberKey(0, groupPairKey(1, 0)), [1, 2, 3]],
      [memberKey(1, groupPairKey(0, 0)), [1, 2, 3]],
      [memberKey(2, groupPairKey(0, 0)), [1, 2, 3]],
      [memberKey(2, groupPairKey(1, 0)), [1, 2, 3]]
    ])

  it("finds nothing wrong when every member got every other sender's messages once, in order", () => {
    const { total, faulty, unexpected } = accountMembers(acked, expected, perfect())
    expect(total).toEqual({ expected: 12, delivered: 12, lost: 0, duplicated: 0, reordered: 0 })
    expect(faulty).toEqual([])
    expect(unexpected).toBe(0)
  })

  it("counts, per member and sender, what is lost, duplicated or out of order", () => {
    const arrivals = perfect()
    arrivals.set(memberKey(2, groupPairKey(0, 0)), [1, 3, 2]) // reordered at member 2
    arrivals.set(memberKey(1, groupPairKey(0, 0)), [1, 2, 2, 3]) // duplicated at member 1
    arrivals.delete(memberKey(0, groupPairKey(1, 0))) // member 0 got nothing from 1: 3 lost
    const { total, faulty } = accountMembers(acked, expected, arrivals)
    expect(total).toMatchObject({ expected: 12, delivered: 9, lost: 3, duplicated: 1, reordered: 1 })
    expect(faulty.map((f) => f.pair).sort()).toEqual([
      memberKey(0, groupPairKey(1, 0)),
      memberKey(1, groupPairKey(0, 0)),
      memberKey(2, groupPairKey(0, 0))
    ])
  })

  it("counts a loss at one member even when the others got the message", () => {
    const arrivals = perfect()
    arrivals.set(memberKey(2, groupPairKey(1, 0)), [1, 3])
    expect(accountMembers(acked, expected, arrivals).total).toMatchObject({ lost: 1, duplicated: 0, reordered: 0 })
  })

  it("counts arrivals nobody expected (a member getting its own pair, or another group's) apart", () => {
    const arrivals = perfect()
    arrivals.set(memberKey(2, groupPairKey(7, 3)), [1, 1])
    const { total, unexpected } = accountMembers(acked, expected, arrivals)
    expect(unexpected).toBe(2)
    expect(total.duplicated).toBe(1)
  })
})

describe("spread", () => {
  it("merges per-message first and last latency over workers, and counts complete messages", () => {
    const a: Spread = new Map()
    const b: Spread = new Map()
    recordSpread(a, "0>g0#1", 5)
    recordSpread(a, "0>g0#1", 9)
    recordSpread(b, "0>g0#1", 3)
    recordSpread(b, "0>g0#2", 4)
    const merged = mergeSpreads([a, b])
    expect([...merged.get("0>g0#1")!]).toEqual([3, 9, 3])
    expect([...merged.get("0>g0#2")!]).toEqual([4, 4, 1])
    const summary = summarizeSpread(merged, 3)
    expect(summary.complete).toBe(1)
    expect(summary.first.count).toBe(2)
    expect(summary.last).toMatchObject({ count: 1, max: 9 })
  })
})

describe("options", () => {
  it("defaults a group run to one group of 500, users = groups × members", () => {
    const options = parseOptions(["--scenario", "group"])
    expect(options).toMatchObject({ members: 500, groups: 1, senders: 10, users: 500 })
    expect(parseOptions(["--scenario", "group", "--groups", "3", "--members", "20", "--senders", "20"])).toMatchObject({ users: 60, senders: 20 })
  })

  it("refuses group sizes the server would refuse, and senders outside the group", () => {
    expect(() => parseOptions(["--scenario", "group", "--members", "2001"])).toThrow(/at most 2000/)
    expect(() => parseOptions(["--scenario", "group", "--members", "5", "--senders", "6"])).toThrow(/senders/)
    expect(() => parseOptions(["--scenario", "group", "--users", "10"])).toThrow(/--users/)
  })
})

describe("Recorder, then accountMembers (what a worker does)", () => {
  // Group 0 = users 0, 1, 2; users 0 and 1 send. This worker holds member 2 only.
  const groupMessage = (sender: number, k: number) => ({
    kind: "group",
    sender_id: `u_${sender}`,
    group_id: "g_0",
    content_type: "text",
    content: encodeStamp({ sender, receiver: 0, toGroup: true, k, sentAt: 100 + k })
  })
  const notice = { kind: "notice", sender_id: "u_0", group_id: "g_0", content_type: "notice", content: JSON.stringify({ type: "group_created", name: "bench", owner_id: "u_0" }) }
  const member2 = { index: 2, id: "u_2", group: 0 }
  const acked = new Map([[groupPairKey(0, 0), Int32Array.from([1, 2, 3])], [groupPairKey(1, 0), Int32Array.from([1, 2])]])
  const expected: Array<readonly [number, ReadonlyArray<string>]> = [[2, [groupPairKey(0, 0), groupPairKey(1, 0)]]]
  const receive = (messages: ReadonlyArray<unknown>) => {
    const counters = { ...zeroCounters }
    const latencies: Array<number> = []
    const foreign: Array<string> = []
    const recorder = new Recorder(counters, latencies, (reason) => foreign.push(reason))
    for (const message of messages) recorder.message(message, member2, 1000)
    return { counters, latencies, foreign, recorder, account: accountMembers(acked, expected, recorder.arrivals) }
  }

  it("splits one member's stream by sender: interleaved senders are in order, and notices count for nothing", () => {
    const { account, counters, latencies } = receive([
      notice,
      groupMessage(0, 1),
      groupMessage(1, 1),
      groupMessage(1, 2),
      groupMessage(0, 2),
      groupMessage(0, 3)
    ])
    expect(account.total).toEqual({ expected: 5, delivered: 5, lost: 0, duplicated: 0, reordered: 0 })
    expect(counters).toMatchObject({ delivered: 5, deliveredDistinct: 5, notices: 1, foreign: 0, lastDeliveryAt: 1000 })
    expect(latencies).toHaveLength(5)
  })

  it("catches one sender's messages out of order, a repeat, and a missing one", () => {
    const { account, counters, latencies } = receive([
      groupMessage(0, 2),
      groupMessage(0, 1),
      groupMessage(0, 3),
      groupMessage(0, 3),
      groupMessage(1, 1)
    ])
    expect(account.total).toMatchObject({ delivered: 4, lost: 1, duplicated: 1, reordered: 1 })
    expect(counters).toMatchObject({ delivered: 5, deliveredDistinct: 4 })
    expect(latencies).toHaveLength(4)
  })

  it("keeps the sender's own copies apart and records per-message spread", () => {
    const { recorder, counters } = receive([groupMessage(0, 1), { ...groupMessage(2, 1), sender_id: "u_2" }])
    expect(counters.ownDistinct).toBe(1)
    expect([...recorder.ownArrivals]).toEqual([[groupPairKey(2, 0), [1]]])
    expect([...recorder.spread.get(`${groupPairKey(0, 0)}#1`)!]).toEqual([899, 899, 1])
  })
})
