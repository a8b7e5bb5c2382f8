import { assert, describe, it } from "@effect/vitest"
import { PortError } from "@im/ports/PortError"
import * as Metrics from "@im/observability/Metrics"
import { Cause, Effect, Exit, Fiber, Metric, Option } from "effect"
import { TestClock } from "effect/testing"
import { crashIsRetryable, isRetryable, keepConsuming } from "../src/KafkaMessageBus.ts"

const restartedCount = Effect.map(Metric.value(Metrics.errors({ service: "consumer", kind: "bus_consumer_restarted" })), (state) => state.count)

const restarts = { delay: "1 second", maxDelay: "4 seconds", giveUpAfter: "10 seconds" } as const
const failure = (retryable: boolean) => new PortError({ port: "MessageBus", operation: "consume", retryable })

/**
 * Consumers' lives: the n-th joins its group first if `joins`, lives `lifeMs`, then fails with a
 * retryable error (or `last`, for the final one when given); past `count` lives it never ends.
 */
const lives = (count: number, options: { readonly lifeMs?: number; readonly joins?: boolean; readonly last?: PortError } = {}) => {
  let started = 0
  const life = (joined: () => void) =>
    Effect.suspend(() => {
      const n = ++started
      if (n > count) return Effect.never
      if (options.joins === true) joined()
      return Effect.sleep(options.lifeMs ?? 0).pipe(
        Effect.andThen(Effect.fail(n === count && options.last !== undefined ? options.last : failure(true)))
      )
    })
  return { life, started: () => started }
}

/** The PortError a failed exit carries (not a defect, not an interruption). */
const failedWith = (exit: Exit.Exit<unknown, PortError>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined

describe("keepConsuming", () => {
  it.effect("starts a consumer again after a retryable failure, waiting twice as long each time, up to maxDelay", () =>
    Effect.gen(function*() {
      const { life, started } = lives(4)
      const before = yield* restartedCount
      const fiber = yield* Effect.forkChild(keepConsuming(life, restarts))
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(started(), 1, "the first restart waits 1 s")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(started(), 2)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(started(), 3)
      yield* TestClock.adjust("3999 millis")
      assert.strictEqual(started(), 3, "the third waits 4 s")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(started(), 4)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(started(), 5, "the fourth waits 4 s too (maxDelay), and its life goes on")
      assert.strictEqual(yield* restartedCount, before + 4, "each restart counted")
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("fails at once, with it, on a failure that is not retryable", () =>
    Effect.gen(function*() {
      const last = failure(false)
      const { life, started } = lives(1, { last })
      const exit = yield* Effect.exit(keepConsuming(life, restarts))
      assert.strictEqual(failedWith(exit), last)
      assert.strictEqual(started(), 1)
    }))

  it.effect("gives up once lives have kept failing for giveUpAfter, however long each lasted", () =>
    Effect.gen(function*() {
      // Quick failures: at 0, 1, 3, 7 and 11 s; the last is past the 10 s.
      const quick = lives(100)
      const fiber = yield* Effect.forkChild(Effect.exit(keepConsuming(quick.life, restarts)))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.join(fiber)
      assert.strictEqual(failedWith(exit)?.retryable, true)
      assert.strictEqual(quick.started(), 5)

      // Lives of 8 s that never join (a broker that never answers a connect): failures at 8, 17
      // and 27 s, the last 19 s after the first.
      const slow = lives(100, { lifeMs: 8_000 })
      const slowFiber = yield* Effect.forkChild(Effect.exit(keepConsuming(slow.life, restarts)))
      yield* TestClock.adjust("1 minute")
      assert.isDefined(failedWith(yield* Fiber.join(slowFiber)))
      assert.strictEqual(slow.started(), 3)
    }))

  it.effect("a life that joined its group starts the count again: failures far apart never add up, and each waits 1 s", () =>
    Effect.gen(function*() {
      const { life, started } = lives(6, { lifeMs: 30_000, joins: true })
      const fiber = yield* Effect.forkChild(keepConsuming(life, restarts))
      for (let n = 1; n <= 6; n++) {
        yield* TestClock.adjust("30 seconds")
        yield* TestClock.adjust("999 millis")
        assert.strictEqual(started(), n, `life ${n} failed; the next waits a whole second`)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(started(), n + 1)
      }
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(started(), 7)
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
    }))
})

describe("crashIsRetryable", () => {
  it("as kafkajs decides to restart a crashed consumer, and a group with no coordinator yet", () => {
    assert.isTrue(crashIsRetryable({ name: "KafkaJSNumberOfRetriesExceeded", retriable: false, cause: { retriable: false } }))
    assert.isTrue(crashIsRetryable({ name: "KafkaJSError", retriable: false, cause: { name: "KafkaJSProtocolError", retriable: true } }))
    assert.isTrue(crashIsRetryable({
      name: "KafkaJSNonRetriableError",
      retriable: false,
      cause: { name: "KafkaJSGroupCoordinatorNotFound", retriable: false }
    }))
    assert.isFalse(crashIsRetryable({ name: "KafkaJSNonRetriableError", retriable: false, cause: { name: "KafkaJSProtocolError", retriable: false } }))
    assert.isFalse(crashIsRetryable(undefined))
  })
})

describe("isRetryable", () => {
  it("kafkajs's own marks, its retries run out over a retriable error, and a group with no coordinator yet", () => {
    assert.isTrue(isRetryable({ name: "KafkaJSConnectionError", retriable: true }))
    assert.isFalse(isRetryable({ name: "KafkaJSNonRetriableError", retriable: false }))
    assert.isTrue(isRetryable({ name: "KafkaJSNumberOfRetriesExceeded", retriable: false, cause: { retriable: true } }))
    assert.isFalse(isRetryable({ name: "KafkaJSNumberOfRetriesExceeded", retriable: false, cause: { retriable: false } }))
    assert.isTrue(isRetryable({ name: "KafkaJSGroupCoordinatorNotFound", retriable: false }))
    // As a crash of a consumer carries it after kafkajs's retries.
    const notFound = { name: "KafkaJSGroupCoordinatorNotFound", retriable: false }
    assert.isTrue(isRetryable({ name: "KafkaJSNonRetriableError", retriable: false, cause: notFound }))
    assert.isFalse(isRetryable({ name: "KafkaJSNonRetriableError", retriable: false, cause: { name: "KafkaJSProtocolError", retriable: false } }))
    assert.isFalse(isRetryable("a string"))
  })
})
