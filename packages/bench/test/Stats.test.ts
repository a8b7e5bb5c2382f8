import { describe, expect, it } from "vitest"
import { decodeStamp, encodeStamp } from "../src/Content.ts"
import { accountPair, accountPairs, bySecond, percentile, sentFrom, summarize } from "../src/Stats.ts"

describe("percentile", () => {
  it("takes the nearest rank of an ascending array", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1)
    expect(percentile(sorted, 50)).toBe(50)
    expect(percentile(sorted, 95)).toBe(95)
    expect(percentile(sorted, 99)).toBe(99)
    expect(percentile(sorted, 100)).toBe(100)
    expect(percentile([7], 99)).toBe(7)
    expect(percentile([], 50)).toBe(0)
  })

  it("summarizes samples in any order without changing them", () => {
    const samples = [5, 1, 4, 2, 3, 100, 6, 7, 8, 9]
    const copy = [...samples]
    const summary = summarize(samples)
    expect(summary).toEqual({ count: 10, p50: 5, p95: 100, p99: 100, max: 100, mean: 14.5 })
    expect(samples).toEqual(copy)
  })
})

describe("bySecond", () => {
  it("groups latencies by the second their message was sent in, from the origin", () => {
    const origin = 1_000_000
    const seconds = bySecond([5, 7, 400, 9, 3], [origin + 10, origin + 990, origin + 1_000, origin + 3_500, origin - 1], origin)
    expect(seconds.map((s) => [s.second, s.count, s.max])).toEqual([[-1, 1, 3], [0, 2, 7], [1, 1, 400], [3, 1, 9]])
    expect(seconds[1]!.p50).toBe(5)
  })

  it("refuses latencies and send times of different lengths", () => {
    expect(() => bySecond([1, 2], [0], 0)).toThrow(RangeError)
    expect(() => sentFrom([1, 2], [0], 0)).toThrow(RangeError)
  })
})

describe("sentFrom", () => {
  it("keeps the latencies of the messages sent at or after the given time", () => {
    expect(Array.from(sentFrom([900, 5, 7, 3], [1_000, 2_999, 3_000, 4_500], 3_000))).toEqual([7, 3])
    expect(sentFrom([1], [0], 1).length).toBe(0)
  })
})

describe("accountPair", () => {
  it("counts nothing wrong when every acknowledged message arrives once, in order", () => {
    expect(accountPair([1, 2, 3], [1, 2, 3])).toEqual({ expected: 3, delivered: 3, lost: 0, duplicated: 0, reordered: 0 })
  })

  it("detects a lost message", () => {
    expect(accountPair([1, 2, 3, 4], [1, 2, 4])).toMatchObject({ lost: 1, duplicated: 0, reordered: 0, delivered: 3 })
  })

  it("detects a duplicated message, even when the copies are not adjacent", () => {
    expect(accountPair([1, 2, 3], [1, 2, 1, 3])).toMatchObject({ lost: 0, duplicated: 1, reordered: 0, delivered: 3 })
  })

  it("detects a reordered message", () => {
    expect(accountPair([1, 2, 3, 4], [1, 3, 2, 4])).toMatchObject({ lost: 0, duplicated: 0, reordered: 1 })
  })

  it("does not count a message that was never acknowledged as lost", () => {
    // 3 got no send_result (timeout): absent is fine, arriving is fine too.
    expect(accountPair([1, 2, 4], [1, 2, 4])).toMatchObject({ lost: 0, delivered: 3 })
    expect(accountPair([1, 2, 4], [1, 2, 3, 4])).toMatchObject({ lost: 0, delivered: 4, reordered: 0 })
  })

  it("detects all three at once over several pairs", () => {
    const acked = new Map([["0>1", Int32Array.from([1, 2, 3, 4, 5])], ["1>0", Int32Array.from([1, 2])], ["2>0", Int32Array.from([1])]])
    const arrivals = new Map([["0>1", [1, 3, 2, 5, 5]], ["1>0", [1, 2]]])
    const { total, faulty } = accountPairs(acked, arrivals)
    expect(total).toEqual({ expected: 8, delivered: 6, lost: 2, duplicated: 1, reordered: 1 })
    expect(faulty.map((p) => p.pair).sort()).toEqual(["0>1", "2>0"])
  })
})

describe("stamps", () => {
  it("round-trip through message content", () => {
    const stamp = { sender: 3, receiver: 4, toGroup: false, k: 17, sentAt: 1764230400012.25 }
    expect(decodeStamp(encodeStamp(stamp))).toEqual(stamp)
    const toGroup = { sender: 3, receiver: 0, toGroup: true, k: 1, sentAt: 1764230400012.5 }
    expect(encodeStamp(toGroup)).toContain("|g0|")
    expect(decodeStamp(encodeStamp(toGroup))).toEqual(toGroup)
    expect(decodeStamp("hello")).toBeUndefined()
    expect(decodeStamp("bench|3|g|1|5")).toBeUndefined()
    expect(decodeStamp("bench|3||1|5")).toBeUndefined()
  })
})
