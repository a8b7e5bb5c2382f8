/**
 * What a user's socket makes of a pushed `message` frame: one of the bench's chat messages for
 * it (a one-to-one message, or a message to its group), the sender's own inbox copy, something to
 * ignore (notices such as `group_created`, other content), or a bench message that should never
 * have reached this user.
 */
import { decodeStamp, groupPairKey, memberKey, pairKey } from "./Content.ts"
import { recordSpread, type Spread } from "./Stats.ts"

export interface Self {
  readonly index: number
  readonly id: string
  /** The group this user is a member of (group scenario). */
  readonly group: number | undefined
}

export type Arrival =
  | { readonly kind: "ignored" }
  | { readonly kind: "own"; readonly pair: string; readonly k: number; readonly sentAt: number }
  | {
    readonly kind: "delivery"
    /** `s>r` for one-to-one, `s>gG` for a group. */
    readonly pair: string
    readonly toGroup: boolean
    readonly k: number
    readonly sentAt: number
  }
  | { readonly kind: "foreign"; readonly reason: string }

const ignored: Arrival = { kind: "ignored" }

/** `message` is the `message` field of a pushed `message` frame. */
export const classify = (message: any, self: Self): Arrival => {
  // Notices (group_created, member_joined, read, …) are inbox entries too, but not chat messages.
  if (message === null || typeof message !== "object" || message.kind === "notice") return ignored
  if (typeof message.content !== "string") return ignored
  const stamp = decodeStamp(message.content)
  if (stamp === undefined) return ignored
  const pair = stamp.toGroup ? groupPairKey(stamp.sender, stamp.receiver) : pairKey(stamp.sender, stamp.receiver)
  const expectedKind = stamp.toGroup ? "group" : "single"
  if (message.kind !== expectedKind) return { kind: "foreign", reason: `${pair}#${stamp.k} arrived as kind ${message.kind}` }
  if (message.sender_id === self.id) {
    if (stamp.sender !== self.index) return { kind: "foreign", reason: `${pair}#${stamp.k} arrived as user ${self.index}'s own` }
    return { kind: "own", pair, k: stamp.k, sentAt: stamp.sentAt }
  }
  if (stamp.toGroup ? stamp.receiver !== self.group : stamp.receiver !== self.index) {
    return { kind: "foreign", reason: `${pair}#${stamp.k} arrived at user ${self.index}` }
  }
  return { kind: "delivery", pair, toGroup: stamp.toGroup, k: stamp.k, sentAt: stamp.sentAt }
}

/** A set of per-pair numbers (1, 2, …, dense), as a growing bitmap. */
export class NumberSet {
  private bits = new Uint8Array(16)
  size = 0

  /** Adds `k`; false if it was there already. */
  add(k: number): boolean {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`not a message number: ${k}`)
    const byte = k >>> 3
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2))
      grown.set(this.bits)
      this.bits = grown
    }
    const mask = 1 << (k & 7)
    if ((this.bits[byte]! & mask) !== 0) return false
    this.bits[byte]! |= mask
    this.size++
    return true
  }

  has(k: number): boolean {
    const byte = k >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (k & 7))) !== 0
  }
}

/** The counters a Recorder moves (a subset of the worker's Counters). */
export interface ReceiveCounters {
  delivered: number
  deliveredDistinct: number
  ownDistinct: number
  foreign: number
  notices: number
  lastDeliveryAt: number
}

/**
 * What one worker's users received: per pair (one-to-one) or per member and sender (group), the
 * numbers in arrival order, for the accounting at the end; the latency of every first arrival;
 * and per group message its first and last member's latency.
 */
export class Recorder {
  /** 1to1: keyed by pair; group: keyed by memberKey(member, pair). */
  readonly arrivals = new Map<string, Array<number>>()
  /** The senders' own copies, keyed by pair. */
  readonly ownArrivals = new Map<string, Array<number>>()
  readonly spread: Spread = new Map()
  private readonly seen = new Map<string, NumberSet>()
  private readonly ownSeen = new Map<string, NumberSet>()

  private readonly counters: ReceiveCounters
  private readonly latencies: { push(ms: number): void }
  private readonly onForeign: (reason: string) => void
  /** Beside each latency, when its message was sent (client clock, ms): for the latency by second. */
  private readonly sendTimes: { push(at: number): void } | undefined

  constructor(
    counters: ReceiveCounters,
    latencies: { push(ms: number): void },
    onForeign: (reason: string) => void,
    sendTimes?: { push(at: number): void }
  ) {
    this.counters = counters
    this.latencies = latencies
    this.onForeign = onForeign
    this.sendTimes = sendTimes
  }

  /** A pushed `message` frame's `message`, at user `self`, at time `at`. */
  message(message: any, self: Self, at: number): Arrival {
    if (message?.kind === "notice") this.counters.notices++
    const arrival = classify(message, self)
    switch (arrival.kind) {
      case "foreign":
        this.counters.foreign++
        this.onForeign(arrival.reason)
        break
      case "own":
        if (record(this.ownArrivals, this.ownSeen, arrival.pair, arrival.k)) this.counters.ownDistinct++
        break
      case "delivery": {
        this.counters.delivered++
        const key = arrival.toGroup ? memberKey(self.index, arrival.pair) : arrival.pair
        if (record(this.arrivals, this.seen, key, arrival.k)) {
          this.counters.deliveredDistinct++
          this.counters.lastDeliveryAt = at
          this.latencies.push(at - arrival.sentAt)
          this.sendTimes?.push(arrival.sentAt)
          if (arrival.toGroup) recordSpread(this.spread, `${arrival.pair}#${arrival.k}`, at - arrival.sentAt)
        }
        break
      }
    }
    return arrival
  }
}

/** Records arrival `k` under `key`; true if it is the first arrival of `k`. */
const record = (lists: Map<string, Array<number>>, sets: Map<string, NumberSet>, key: string, k: number): boolean => {
  let list = lists.get(key)
  if (list === undefined) lists.set(key, list = [])
  list.push(k)
  let set = sets.get(key)
  if (set === undefined) sets.set(key, set = new NumberSet())
  return set.add(k)
}
