import { createRequire } from "node:module"

/**
 * kafkajs 2.2.4, its last release, checks each broker connection's queue of pending requests in
 * a loop of 1 ms timers from its first request on, whether or not a request is pending: when
 * nothing is throttled, `throttledUntil - Date.now()` is negative, and a negative delay is 1 ms
 * (tulios/kafkajs#1556, #1704; on Node 24 also the TimeoutNegativeWarning of #1751). Idle, chat
 * and each consumer woke about 900 times a second, 120 with the fix; under load the CPU per
 * message did not measurably change (docs/benchmarks.md, "Per call, not per message").
 *
 * Fixed here as the open pull requests fix it (#1667): a check is scheduled only when a request
 * is pending or the broker throttles the client. Nothing is lost: a request pushed later is sent
 * at once, or waits and schedules its own check, and a fulfilled request checks the queue
 * itself (`fulfillRequest` → `checkPendingRequests`). Applied once per process, to the module
 * kafkajs itself loads.
 */
interface RequestQueue {
  readonly pending: ReadonlyArray<unknown>
  readonly throttledUntil: number
  scheduleCheckPendingRequests(this: RequestQueue): void
}

const FIXED = Symbol.for("@im/kafka/RequestQueueFix")

export const stopIdleRequestChecks = (): void => {
  const RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as {
    prototype: RequestQueue & { [FIXED]?: true }
  }
  const prototype = RequestQueue.prototype
  if (prototype[FIXED]) return
  const schedule = prototype.scheduleCheckPendingRequests
  prototype.scheduleCheckPendingRequests = function(this: RequestQueue) {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return
    schedule.call(this)
  }
  prototype[FIXED] = true
}
