import { assert } from "@effect/vitest"
import { Data, type Duration, Effect, Fiber, type Layer, Queue, Ref } from "effect"
import { type BusRecord, type ConsumedRecord, type ConsumeOptions, MessageBus } from "../src/MessageBus.ts"
import { unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions, within } from "./Suite.ts"

class HandlerFailed extends Data.TaggedError("HandlerFailed")<{}> {}

const position = (r: ConsumedRecord) => `${r.partition}/${r.offset}`

const valuesOfKey = (records: ReadonlyArray<BusRecord>, key: string) =>
  records.filter((r) => r.key === key).map((r) => r.value)

/** A consumer whose batches the test can read; the handler runs after the batch is recorded. */
const startConsumer = <E>(
  options: ConsumeOptions,
  handler: (batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E> = () => Effect.void
) =>
  Effect.gen(function*() {
    const bus = yield* MessageBus
    const batches = yield* Queue.unbounded<ReadonlyArray<ConsumedRecord>>()
    const fiber = yield* bus.consume(options, (batch) => Effect.andThen(Queue.offer(batches, batch), handler(batch))).pipe(
      Effect.forkScoped
    )
    return { batches, fiber }
  })

/**
 * The MessageBus contract: keyed order, at-least-once batches committed after the handler
 * succeeds, consumer groups. `patience` bounds every wait (a Kafka group join takes seconds).
 * `marksRedelivered`: the bus says whether it handed a record over before (the in-process bus);
 * one that cannot tell (Kafka) must leave `redelivered` out, never say `false`.
 */
export const messageBusSuite = (
  name: string,
  adapter: Layer.Layer<MessageBus, unknown>,
  options: SuiteOptions & { readonly patience?: Duration.Input; readonly marksRedelivered: boolean }
) => {
  const patience = options.patience ?? "15 seconds"
  const testTimeout = 120_000

  /** Every record says it was handed over before (`true`), or not, where the bus tells; nothing where it cannot. */
  const assertMarked = (records: ReadonlyArray<ConsumedRecord>, redelivered: boolean, what: string) =>
    assert.deepStrictEqual(
      records.map((r) => r.redelivered),
      records.map(() => options.marksRedelivered ? redelivered : undefined),
      what
    )
  const withoutMark = ({ redelivered: _, ...record }: ConsumedRecord) => record

  /** Takes batches until `enough` holds for the records received so far. */
  const receive = (
    batches: Queue.Queue<ReadonlyArray<ConsumedRecord>>,
    enough: (records: ReadonlyArray<ConsumedRecord>) => boolean,
    what: string
  ) =>
    Effect.gen(function*() {
      const received: Array<ReadonlyArray<ConsumedRecord>> = []
      const records: Array<ConsumedRecord> = []
      while (!enough(records)) {
        const batch = yield* Queue.take(batches)
        received.push(batch)
        records.push(...batch)
      }
      return { batches: received, records }
    }).pipe(within(patience, what))

  const atLeast = (n: number) => (records: ReadonlyArray<ConsumedRecord>) => records.length >= n

  const fresh = (maxBatch = 100): ConsumeOptions => ({ topic: unique("topic"), group: unique("group"), maxBatch })

  describeAdapter(`MessageBus conformance: ${name}`, adapter, options, (it) => {
    it.effect("records published before the group starts reach it, with topic, key and value", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh()
        const published: Array<BusRecord> = [{ key: "a", value: "1" }, { key: "b", value: "2" }, { key: "a", value: "3" }]
        yield* bus.publish(options.topic, published)
        const { batches } = yield* startConsumer(options)
        const { records } = yield* receive(batches, atLeast(3), "3 records")
        assert.strictEqual(records.length, 3)
        const byValue = [...records].sort((x, y) => x.value.localeCompare(y.value))
        assert.deepStrictEqual(byValue.map(({ key, value }) => ({ key, value })), published)
        for (const record of records) assert.strictEqual(record.topic, options.topic)
        assert.strictEqual(new Set(records.map(position)).size, 3, "each record has its own (partition, offset)")
        assertMarked(records, false, "handed over for the first time")
      }), testTimeout)

    it.effect("a record's headers (the sender's trace context) reach the consumer with it; a record without has none", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh()
        const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        yield* bus.publish(options.topic, [{ key: "a", value: "with", headers: { traceparent, other: "x" } }, { key: "a", value: "without" }])
        const { batches } = yield* startConsumer(options)
        const { records } = yield* receive(batches, atLeast(2), "2 records")
        assert.deepStrictEqual(records.find((r) => r.value === "with")?.headers, { traceparent, other: "x" })
        assert.deepStrictEqual(records.find((r) => r.value === "without")?.headers ?? {}, {})
      }), testTimeout)

    it.effect("records published while a consumer waits reach it", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh()
        yield* bus.publish(options.topic, [{ key: "k", value: "early" }])
        const { batches } = yield* startConsumer(options)
        yield* receive(batches, atLeast(1), "the early record")
        yield* bus.publish(options.topic, [{ key: "k", value: "late" }])
        const { records } = yield* receive(batches, atLeast(1), "the late record")
        assert.deepStrictEqual(records.map((r) => r.value), ["late"])
        yield* bus.publish(options.topic, [])
      }), testTimeout)

    it.effect("records with the same key arrive in publish order, in batches of at most maxBatch", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh(7)
        const keys = ["alice", "bob", "carol", "dave"]
        const published: Array<BusRecord> = []
        for (let i = 0; i < 80; i++) published.push({ key: keys[i % keys.length]!, value: `${i}` })
        for (let i = 0; i < published.length; i += 13) yield* bus.publish(options.topic, published.slice(i, i + 13))
        const { batches } = yield* startConsumer(options)
        const received = yield* receive(batches, atLeast(published.length), "every record")
        assert.strictEqual(received.records.length, published.length)
        for (const key of keys) assert.deepStrictEqual(valuesOfKey(received.records, key), valuesOfKey(published, key))
        for (const batch of received.batches) {
          assert.isAtLeast(batch.length, 1)
          assert.isAtMost(batch.length, 7)
        }
      }), testTimeout)

    it.effect("a batch whose handler fails is handed over again", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh()
        yield* bus.publish(options.topic, ["1", "2", "3", "4"].map((value) => ({ key: "k", value })))
        const calls = yield* Ref.make(0)
        const { batches } = yield* startConsumer(options, () =>
          Effect.flatMap(Ref.getAndUpdate(calls, (n) => n + 1), (n) => n === 0 ? Effect.fail(new HandlerFailed()) : Effect.void))
        const [failed] = (yield* receive(batches, atLeast(1), "the first batch")).batches
        const again = yield* receive(
          batches,
          (records) => failed!.every((f) => records.some((r) => position(r) === position(f))),
          "the failed batch's records again"
        )
        assert.deepStrictEqual(withoutMark(again.records[0]!), withoutMark(failed![0]!), "redelivery starts where the failed batch did")
        const hasLast = (records: ReadonlyArray<ConsumedRecord>) => records.some((r) => r.value === "4")
        const rest = hasLast(again.records) ? [] : (yield* receive(batches, hasLast, "the rest")).records
        const all = [...again.records, ...rest]
        assert.deepStrictEqual(all.map((r) => r.value), ["1", "2", "3", "4"])
        assertMarked(failed!, false, "the failed batch, the first time")
        const wasFailed = (r: ConsumedRecord) => failed!.some((f) => position(f) === position(r))
        assertMarked(all.filter(wasFailed), true, "the failed batch's records again")
        assertMarked(all.filter((r) => !wasFailed(r)), false, "the records after it")
      }), testTimeout)

    it.effect("a batch whose handler dies is handed over again", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh()
        yield* bus.publish(options.topic, [{ key: "k", value: "only" }])
        const calls = yield* Ref.make(0)
        const { batches } = yield* startConsumer(options, () =>
          Effect.flatMap(Ref.getAndUpdate(calls, (n) => n + 1), (n) => n === 0 ? Effect.die("boom") : Effect.void))
        const { records } = yield* receive(batches, atLeast(2), "the record twice")
        assert.deepStrictEqual(records.map((r) => r.value), ["only", "only"])
        assert.strictEqual(position(records[0]!), position(records[1]!))
        assertMarked(records.slice(0, 1), false, "the first time")
        assertMarked(records.slice(1), true, "again")
      }), testTimeout)

    it.effect("a consumer interrupted before its handler succeeds commits nothing", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh()
        yield* bus.publish(options.topic, ["1", "2", "3"].map((value) => ({ key: "k", value })))
        const stuck = yield* startConsumer(options, () => Effect.never)
        const [held] = (yield* receive(stuck.batches, atLeast(1), "the first consumer's batch")).batches
        yield* Fiber.interrupt(stuck.fiber)

        const restarted = yield* startConsumer(options)
        const { records } = yield* receive(restarted.batches, atLeast(held!.length), "the same records again")
        assert.deepStrictEqual(records.slice(0, held!.length).map(withoutMark), held!.map(withoutMark))
        assertMarked(held!, false, "the first consumer's batch")
        assertMarked(records.slice(0, held!.length), true, "the same records, to the restarted consumer")
      }), testTimeout)

    it.effect("committed records are not handed to a restarted consumer of the group", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const options = fresh(2)
        yield* bus.publish(options.topic, ["1", "2", "3"].map((value) => ({ key: "k", value })))
        const first = yield* startConsumer(options)
        yield* receive(first.batches, (rs) => rs.some((r) => r.value === "3"), "records 1-3")
        // Once the handler has the fence, the batches before it were handled and committed.
        yield* bus.publish(options.topic, [{ key: "k", value: "fence" }])
        yield* receive(first.batches, (rs) => rs.some((r) => r.value === "fence"), "the fence")
        yield* Fiber.interrupt(first.fiber)

        yield* bus.publish(options.topic, [{ key: "k", value: "4" }])
        const second = yield* startConsumer(options)
        const { records } = yield* receive(second.batches, (rs) => rs.some((r) => r.value === "4"), "record 4")
        const values = records.map((r) => r.value)
        for (const done of ["1", "2", "3"]) assert.notInclude(values, done)
        assert.strictEqual(values.at(-1), "4")
        assertMarked(records.filter((r) => r.value === "4"), false, "a record the group's first consumer never had")
      }), testTimeout)

    it.effect("every group gets every record", () =>
      Effect.gen(function*() {
        const bus = yield* MessageBus
        const topic = unique("topic")
        const published = Array.from({ length: 12 }, (_, i) => ({ key: `k${i % 5}`, value: `${i}` }))
        const one = yield* startConsumer({ topic, group: unique("group"), maxBatch: 3 })
        const two = yield* startConsumer({ topic, group: unique("group"), maxBatch: 50 })
        // Both groups must exist before the first commit: a bus may drop what every group it
        // knows has committed (the memory bus does), so a group that joins later can miss it.
        yield* Effect.sleep("100 millis")
        yield* bus.publish(topic, published.slice(0, 6))
        yield* bus.publish(topic, published.slice(6))
        for (const consumer of [one, two]) {
          const { records } = yield* receive(consumer.batches, atLeast(published.length), "every record in each group")
          assert.deepStrictEqual(records.map((r) => Number(r.value)).sort((x, y) => x - y), published.map((_, i) => i))
        }
      }), testTimeout)
  })
}
