/** What the bench's main process and its load-generator workers say to each other over IPC. */
import type { Scenario } from "./Options.ts"

export type ToWorker =
  | {
    readonly type: "setup"
    readonly scenario: Scenario
    readonly runId: string
    readonly baseUrl: string
    /** Global indices of this worker's users. */
    readonly users: ReadonlyArray<number>
    /** 1to1: open each user's socket during setup. */
    readonly connect: boolean
  }
  | {
    readonly type: "go"
    /** Global index → user id. */
    readonly ids: ReadonlyArray<string>
    /** Global index → the index of the user it sends to. */
    readonly partners: ReadonlyArray<number>
    /** This worker's share of the rate, messages/s; 0 = as fast as acks allow. */
    readonly rate: number
    readonly durationMs: number
    readonly inflight: number
  }
  | { readonly type: "open"; readonly connections: number }
  | { readonly type: "finish" }

export interface Counters {
  readonly sent: number
  readonly acked: number
  readonly ackErrors: number
  readonly ackTimeouts: number
  /** Arrivals of a message at its receiver (duplicates included). */
  readonly delivered: number
  /** Distinct messages arrived at their receivers. */
  readonly deliveredDistinct: number
  /** Distinct messages arrived back at their sender (its own inbox copy). */
  readonly ownDistinct: number
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
  throttled: 0,
  socketsOpen: 0,
  socketsClosed: 0,
  lastDeliveryAt: 0
}

export type FromWorker =
  | { readonly type: "ready"; readonly ids: ReadonlyArray<readonly [number, string]>; readonly wsUrls: ReadonlyArray<string> }
  | { readonly type: "progress"; readonly counters: Counters }
  | {
    /** 1to1: sending is over and every send has its result (or timed out). */
    readonly type: "sent"
    readonly counters: Counters
    /** Pair key → the per-pair numbers acknowledged ok. */
    readonly acked: Map<string, Int32Array>
  }
  | { readonly type: "opened"; readonly opened: number; readonly failed: number; readonly firstError: string | undefined }
  | {
    readonly type: "report"
    readonly counters: Counters
    /** Pair key → per-pair numbers in arrival order, at the receiver. */
    readonly arrivals: Map<string, Array<number>>
    /** Pair key → per-pair numbers in arrival order, back at the sender (its own copy). */
    readonly ownArrivals: Map<string, Array<number>>
    readonly latencies: Float64Array
    readonly ackLatencies: Float64Array
    readonly closes: ReadonlyArray<string>
    readonly errors: ReadonlyArray<string>
  }
  | { readonly type: "failed"; readonly error: string }
