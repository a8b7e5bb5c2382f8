/** What the bench's main process and its load-generator workers say to each other over IPC. */
import type { Scenario } from "./Options.ts"
import type { PairAccount, PairDetail } from "./Stats.ts"

/** What a sender sends to: a user (one-to-one) or a group. */
export interface SendTarget {
  readonly kind: "user" | "group"
  /** The user's global index, or the group's index. */
  readonly index: number
  /** The user's or group's id on the server. */
  readonly id: string
}

/** One group of the group scenario, by global user indices. */
export interface GroupPlan {
  readonly index: number
  /** The first member creates the group (and is its owner). */
  readonly members: ReadonlyArray<number>
  /** The members that send to it. */
  readonly senders: ReadonlyArray<number>
}

export type ToWorker =
  | {
    readonly type: "setup"
    readonly scenario: Scenario
    readonly runId: string
    readonly baseUrl: string
    /** Global indices of this worker's users. */
    readonly users: ReadonlyArray<number>
    /** 1to1 and group: open each user's socket during setup. */
    readonly connect: boolean
    /** Logins (register + login) in flight at once in this worker. */
    readonly loginConcurrency: number
  }
  | {
    /** Group: learn who is in which group, and create the groups whose first member is here. */
    readonly type: "groups"
    readonly groups: ReadonlyArray<GroupPlan>
    /** Global index → user id. */
    readonly ids: ReadonlyArray<string>
  }
  | {
    readonly type: "go"
    /** Global index → what that user sends to, or null if it does not send. */
    readonly targets: ReadonlyArray<SendTarget | null>
    /** This worker's share of the rate, messages/s; 0 = as fast as acks allow. */
    readonly rate: number
    readonly durationMs: number
    readonly inflight: number
  }
  | { readonly type: "open"; readonly connections: number }
  | {
    readonly type: "finish"
    /** Group: every sender's acknowledged numbers (pair key → numbers), to account at the members here. */
    readonly acked?: Map<string, Int32Array>
  }

export interface Counters {
  readonly sent: number
  readonly acked: number
  readonly ackErrors: number
  readonly ackTimeouts: number
  /** Arrivals of a message at its receiver (duplicates included). */
  readonly delivered: number
  /** Distinct messages arrived at their receivers (group: distinct (member, message)). */
  readonly deliveredDistinct: number
  /** Distinct messages arrived back at their sender (its own inbox copy). */
  readonly ownDistinct: number
  /** Bench messages that reached a user they were not for. */
  readonly foreign: number
  /** Notices pushed (not chat messages; not counted anywhere else). */
  readonly notices: number
  /** Sends the rate asked for that could not go because every sender had `inflight` awaiting results. */
  readonly throttled: number
  readonly socketsOpen: number
  readonly socketsClosed: number
  /** When the last message arrived at a receiver (ms since the epoch; 0 = none yet). Summed as a maximum. */
  readonly lastDeliveryAt: number
}

/** Counters before anything happened. */
export const zeroCounters: Counters = {
  sent: 0,
  acked: 0,
  ackErrors: 0,
  ackTimeouts: 0,
  delivered: 0,
  deliveredDistinct: 0,
  ownDistinct: 0,
  foreign: 0,
  notices: 0,
  throttled: 0,
  socketsOpen: 0,
  socketsClosed: 0,
  lastDeliveryAt: 0
}

export type FromWorker =
  | { readonly type: "ready"; readonly ids: ReadonlyArray<readonly [number, string]>; readonly wsUrls: ReadonlyArray<string> }
  | {
    readonly type: "grouped"
    /** Group index → id, of the groups this worker created. */
    readonly created: ReadonlyArray<readonly [number, string]>
    readonly counters: Counters
  }
  | { readonly type: "progress"; readonly counters: Counters }
  | {
    /** Sending is over and every send has its result (or timed out). */
    readonly type: "sent"
    readonly counters: Counters
    /** Pair key → the per-pair numbers acknowledged ok. */
    readonly acked: Map<string, Int32Array>
  }
  | { readonly type: "opened"; readonly opened: number; readonly failed: number; readonly firstError: string | undefined }
  | {
    readonly type: "report"
    readonly counters: Counters
    /** 1to1: pair key → per-pair numbers in arrival order, at the receiver (group: empty, see `members`). */
    readonly arrivals: Map<string, Array<number>>
    /** Pair key → per-pair numbers in arrival order, back at the sender (its own copy). */
    readonly ownArrivals: Map<string, Array<number>>
    /** Group: the accounting of this worker's members (see `accountMembers`). */
    readonly members?: { readonly total: PairAccount; readonly faulty: ReadonlyArray<PairDetail>; readonly unexpected: number }
    /** Group: per message, lowest and highest latency over this worker's members, and how many got it. */
    readonly spread?: Map<string, Float64Array>
    /** Every distinct delivery's send→delivery latency (group: at every member). */
    readonly latencies: Float64Array
    /** When the message of each latency was sent (client clock, ms). */
    readonly sendTimes: Float64Array
    readonly ackLatencies: Float64Array
    /** CPU time (user + system) this worker used since sending began (idle: since it started), ms. */
    readonly cpuMs: number
    readonly closes: ReadonlyArray<string>
    readonly errors: ReadonlyArray<string>
  }
  | { readonly type: "failed"; readonly error: string }
