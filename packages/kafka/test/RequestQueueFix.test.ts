import { createRequire } from "node:module"
import { afterEach, describe, expect, it } from "vitest"
import { stopIdleRequestChecks } from "../src/RequestQueueFix.ts"

/** kafkajs's queue of a broker connection's requests, the module the fix patches. */
const RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js")

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} }
const queues: Array<any> = []
const makeQueue = (maxInFlightRequests: number) => {
  const queue = new RequestQueue({ maxInFlightRequests, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: "t", broker: "b", logger: quiet })
  queues.push(queue)
  return queue
}
/** A request that records when it is sent and when it is answered. */
const request = (correlationId: number, log: Array<string>) => ({
  entry: { correlationId, apiName: "Produce", apiKey: 0, apiVersion: 3, resolve: () => log.push(`answered ${correlationId}`), reject: () => {} },
  expectResponse: true,
  sendRequest: () => log.push(`sent ${correlationId}`)
})

afterEach(() => {
  for (const queue of queues.splice(0)) queue.destroy()
})

describe("kafkajs's request queue, with the idle checks stopped (RequestQueueFix)", () => {
  stopIdleRequestChecks()

  it("schedules no check once a request is answered and none waits (kafkajs 2.2.4 looped every 1 ms)", () => {
    const queue = makeQueue(1)
    const log: Array<string> = []
    queue.push(request(1, log))
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 })
    expect(log).toEqual(["sent 1", "answered 1"])
    expect(queue.throttleCheckTimeoutId).toBeNull()
  })

  it("still sends a request that waited for the one in flight, once that is answered", async () => {
    const queue = makeQueue(1)
    const log: Array<string> = []
    queue.push(request(1, log))
    queue.push(request(2, log)) // waits: one in flight at most
    expect(log).toEqual(["sent 1"])
    queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 })
    queue.fulfillRequest({ correlationId: 2, payload: Buffer.alloc(0), size: 0 })
    expect(log).toEqual(["sent 1", "sent 2", "answered 1", "answered 2"])
    // The check scheduled while request 2 waited runs, and schedules none after it.
    await new Promise((resolve) => setTimeout(resolve, 30))
    expect(queue.throttleCheckTimeoutId).toBeNull()
  })

  it("still checks again when the broker throttles the client, and sends once the throttle ends", async () => {
    const queue = makeQueue(10)
    const log: Array<string> = []
    queue.maybeThrottle(30)
    queue.push(request(1, log))
    expect(log).toEqual([])
    expect(queue.throttleCheckTimeoutId).not.toBeNull()
    await new Promise((resolve) => setTimeout(resolve, 80))
    expect(log).toEqual(["sent 1"])
  })

  it("is applied once, however many buses start", () => {
    const before = RequestQueue.prototype.scheduleCheckPendingRequests
    stopIdleRequestChecks()
    expect(RequestQueue.prototype.scheduleCheckPendingRequests).toBe(before)
  })
})
