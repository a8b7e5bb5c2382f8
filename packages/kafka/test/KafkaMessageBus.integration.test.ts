import { type ConsumedRecord, MessageBus } from "@im/ports/MessageBus"
import { unique } from "@im/ports/testing/Fixtures"
import { messageBusSuite } from "@im/ports/testing/MessageBusSuite"
import { within } from "@im/ports/testing/Suite"
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Fiber, Layer, Option, Queue, Schedule, Scope } from "effect"
import * as KafkaMessageBus from "../src/KafkaMessageBus.ts"

// A real Kafka broker (`npm run infra:up`). Every test uses topics and groups of its own.
const brokers = (process.env["KAFKA_BROKERS"] ?? "127.0.0.1:9092").split(",")
// A group join takes seconds: the first join, and again after a member leaves.
const patience = "45 seconds"

const bus = (partitions: number) =>
  Layer.effect(MessageBus, KafkaMessageBus.make({ brokers, clientId: unique("im-test"), partitions }))

messageBusSuite("kafka, 1 partition", bus(1), { patience, timeout: "60 seconds", marksRedelivered: false })
messageBusSuite("kafka, 4 partitions", bus(4), { patience, timeout: "60 seconds", marksRedelivered: false })

/** Publishes wait 300 ms for company. */
const lingering = Layer.effect(
  MessageBus,
  KafkaMessageBus.make({
    brokers,
    clientId: unique("im-test"),
    partitions: 2,
    produceLinger: "300 millis"
  })
)
messageBusSuite("kafka, lingering publishes", lingering, { patience, timeout: "60 seconds", marksRedelivered: false })

layer(lingering, { excludeTestServices: true, timeout: "60 seconds" })("KafkaMessageBus with a produce linger", (it) => {
  it.effect("publishes made within the linger go out in one request, each call's records in order", () =>
    Effect.gen(function*() {
      const bus = yield* MessageBus
      const topic = unique("topic")
      yield* bus.publish(topic, [{ key: "k", value: "first" }])
      const started = Date.now()
      // One request per publish would take 40 lingers (12 s); together they take about one.
      yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (i) => bus.publish(topic, [{ key: `k${i}`, value: `${i}a` }, { key: `k${i}`, value: `${i}b` }]),
        { concurrency: "unbounded", discard: true }
      )
      const elapsed = Date.now() - started
      assert.isBelow(elapsed, 3_000, `40 publishes took ${elapsed} ms`)
      const seen = yield* Queue.unbounded<ReadonlyArray<ConsumedRecord>>()
      yield* bus.consume({ topic, group: unique("group"), maxBatch: 500 }, (batch) => Queue.offer(seen, batch)).pipe(Effect.forkScoped)
      const records: Array<ConsumedRecord> = []
      while (records.length < 81) records.push(...(yield* Queue.take(seen)))
      for (let i = 0; i < 40; i++) {
        const values = records.filter((record) => record.key === `k${i}`).map((record) => record.value)
        assert.deepStrictEqual(values, [`${i}a`, `${i}b`])
      }
    }).pipe(within(patience, "the lingering publishes")), 120_000)
})

layer(bus(2), { excludeTestServices: true, timeout: "60 seconds" })("KafkaMessageBus", (it) => {
  /** Takes batches until `count` records arrived. */
  const takeRecords = (queue: Queue.Queue<ReadonlyArray<ConsumedRecord>>, count: number, what: string) =>
    Effect.gen(function*() {
      const records: Array<ConsumedRecord> = []
      while (records.length < count) records.push(...(yield* Queue.take(queue)))
      return records
    }).pipe(within(patience, what))

  it.effect("a consumer restarted without committing gets the same batch again; lag counts it", () =>
    Effect.gen(function*() {
      const bus = yield* MessageBus
      const topic = unique("topic")
      const group = unique("group")
      const values = ["1", "2", "3", "4", "5"]
      yield* bus.publish(topic, values.map((value) => ({ key: "one-key", value })))
      assert.strictEqual(yield* bus.lag(topic, group), 5, "nothing committed: every record is lag")

      const seen = yield* Queue.unbounded<ReadonlyArray<ConsumedRecord>>()
      const blocked = yield* bus.consume({ topic, group, maxBatch: 3 }, (batch) =>
        Queue.offer(seen, batch).pipe(Effect.andThen(Effect.never))).pipe(Effect.forkScoped)
      const held = yield* takeRecords(seen, 1, "the first consumer's batch")
      assert.deepStrictEqual(held.map((r) => r.value), ["1", "2", "3"], "at most maxBatch, in order")
      yield* Fiber.interrupt(blocked)
      assert.strictEqual(yield* bus.lag(topic, group), 5, "an interrupted handler commits nothing")

      const again = yield* Queue.unbounded<ReadonlyArray<ConsumedRecord>>()
      const restarted = yield* bus.consume({ topic, group, maxBatch: 3 }, (batch) => Queue.offer(again, batch)).pipe(
        Effect.forkScoped
      )
      const redelivered = yield* takeRecords(again, 5, "every record again")
      assert.deepStrictEqual(redelivered.slice(0, 3), held, "the same batch, same offsets")
      assert.deepStrictEqual(redelivered.map((r) => r.value), values)
      // Commits follow the handler; lag reaches 0 once the last batch is committed.
      yield* bus.lag(topic, group).pipe(
        Effect.repeat({ until: (lag) => lag === 0, schedule: Schedule.spaced("100 millis") }),
        within("10 seconds", "lag 0")
      )
      yield* Fiber.interrupt(restarted)
      yield* bus.publish(topic, [{ key: "one-key", value: "6" }])
      assert.strictEqual(yield* bus.lag(topic, group), 1, "a record published after the last commit")
    }), 120_000)
})

describe("KafkaMessageBus closing", () => {
  it.live("a publish lingering when the bus closes fails, retryable, instead of waiting for ever", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const bus = Context.get(yield* Layer.buildWithScope(lingering, scope), MessageBus)
      const topic = unique("topic")
      yield* bus.publish(topic, [{ key: "k", value: "before" }])
      const during = yield* bus.publish(topic, [{ key: "k", value: "during" }]).pipe(Effect.forkDetach)
      yield* Effect.sleep("100 millis") // within the 300 ms linger
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Fiber.await(during).pipe(Effect.timeout("15 seconds"))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined
      assert.strictEqual(error?.retryable, true)
    }), 60_000)
})

describe("start-up without a broker", () => {
  it.live("fails within the bounded wait, naming KAFKA_BROKERS", () =>
    Effect.gen(function*() {
      const exit = yield* KafkaMessageBus.layer.pipe(
        Layer.build,
        Effect.scoped,
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({
          KAFKA_BROKERS: "127.0.0.1:1",
          KAFKA_CONNECT_TIMEOUT: "2 seconds"
        }))),
        Effect.exit
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.match(String(exit), /KAFKA_BROKERS=127\.0\.0\.1:1/)
    }), 20_000)
})
