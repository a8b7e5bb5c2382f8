import { assert, describe, it } from "@effect/vitest"
import { PortError } from "@im/ports/PortError"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { isRetryable, keepConsuming } from "../src/KafkaMessageBus.ts"

const restarts = { max: 3, window: "1 minute", delay: "1 second", maxDelay: "4 seconds" } as const
const failure = (retryable: boolean) => new PortError({ port: "MessageBus", operation: "consume", retryable })

/** A consumer's lives, each failing with the next of `failures` (retryable or not) after `lifeMs`; the last never ends. */
const lives = (failures: ReadonlyArray<boolean>, lifeMs = 0) => {
  let started = 0
  const consume = Effect.suspend(() => {
    const next = failures[started++]
    return next === undefined ? Effect.never : Effect.sleep(lifeMs).pipe(Effect.andThen(Effect.fail(failure(next))))
  })
  return { consume, started: () => started }
}

describe("keepConsuming", () => {
  it.effect("starts a consumer again after a retryable failure, waiting twice as long each time", () =>
    Effect.gen(function*() {
      const { consume, started } = lives([true, true, true])
      const fiber = yield* Effect.forkChild(keepConsuming(consume, restarts))
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(started(), 1, "the first restart waits 1 s")
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(started(), 2)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(started(), 3)
      yield* TestClock.adjust("4 seconds")
      assert.strictEqual(started(), 4, "the fourth life goes on")
      assert.isUndefined(fiber.pollUnsafe())
      yield* Fiber.interrupt(fiber)
    }))

  it.effect("fails at once on a failure that is not retryable", () =>
    Effect.gen(function*() {
      const { consume, started } = lives([false])
      const exit = yield* Effect.exit(keepConsuming(consume, restarts))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(started(), 1)
    }))

  it.effect("fails after `max` restarts within the window; restarts further apart do not add up", () =>
    Effect.gen(function*() {
      // Four failures in quick succession: the fourth is one restart too many.
      const quick = lives([true, true, true, true])
      const fiber = yield* Effect.forkChild(Effect.exit(keepConsuming(quick.consume, restarts)))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.join(fiber)
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual(quick.started(), 4)

      // The same failures, each after a life of 30 s: never more than 2 within a minute.
      const slow = lives([true, true, true, true, true, true], 30_000)
      const going = yield* Effect.forkChild(keepConsuming(slow.consume, restarts))
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(slow.started(), 7)
      assert.isUndefined(going.pollUnsafe())
      yield* Fiber.interrupt(going)
    }))
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
