import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Queue, Scope } from "effect"
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import * as BusJournal from "../src/BusJournal.ts"
import { type BusRecord, type ConsumedRecord, MessageBus } from "../src/MessageBus.ts"
import { messageBusSuite } from "../testing/MessageBusSuite.ts"

const dirs: Array<string> = []
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "im-bus-journal-"))
  dirs.push(dir)
  return dir
}
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

// The contract of every bus, journaled; each build of the layer in a folder of its own.
const journaled = (options: Omit<BusJournal.JournalOptions, "dir">) => Layer.unwrap(Effect.sync(() => BusJournal.layer({ ...options, dir: freshDir() })))
messageBusSuite("journaled, 1 partition", journaled({}), { patience: "2 seconds", marksRedelivered: true })
messageBusSuite("journaled, 4 partitions, a segment per write", journaled({ partitions: 4, segmentBytes: 1 }), { patience: "2 seconds", marksRedelivered: true })

const segmentsIn = (dir: string) => readdirSync(dir).filter((name) => name.endsWith(".journal")).sort()

/** A run of the server: the bus on `dir` until `run` ends (a crash and a clean stop close it alike; what differs is what was committed). */
const withBus = <A, E>(dir: string, run: (bus: MessageBus["Service"]) => Effect.Effect<A, E, Scope.Scope>, segmentBytes?: number) =>
  Effect.scoped(Effect.flatMap(Effect.service(MessageBus), run)).pipe(
    Effect.provide(BusJournal.layer({ dir, partitions: 2, ...(segmentBytes === undefined ? {} : { segmentBytes }) }))
  )

/** Consumes `topic` as group `g` until `count` records came, committing each batch. */
const consumeAll = (bus: MessageBus["Service"], topic: string, count: number) =>
  Effect.gen(function*() {
    const received = yield* Queue.unbounded<ConsumedRecord>()
    const fiber = yield* bus.consume({ topic, group: "g", maxBatch: 100 }, (batch) => Queue.offerAll(received, batch)).pipe(Effect.forkScoped)
    const records: Array<ConsumedRecord> = []
    while (records.length < count) records.push(yield* Queue.take(received))
    // Committed once the handler returned: wait for the group to be level with the topic.
    yield* bus.lag(topic, "g").pipe(Effect.repeat({ until: (lag) => lag === 0 }))
    yield* Fiber.interrupt(fiber)
    return records
  }).pipe(Effect.timeout(Duration.seconds(5)))

const records = (prefix: string, count: number, key = "k"): ReadonlyArray<BusRecord> =>
  Array.from({ length: count }, (_, i) => ({ key, value: `${prefix}${i}`, headers: { traceparent: `t${i}` } }))

describe("BusJournal", () => {
  it.live("a record published and not committed is handed over again after a restart, in order and marked; committed ones are not", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const first = yield* withBus(dir, (bus) =>
        Effect.gen(function*() {
          yield* bus.publish("t", records("done", 3))
          const done = yield* consumeAll(bus, "t", 3)
          // The process dies with these accepted (published) and not stored (committed).
          yield* bus.publish("t", records("open", 5))
          yield* bus.publish("u", records("other", 2, "x"))
          return done
        }), 1)
      assert.deepStrictEqual(first.map((r) => r.redelivered), [false, false, false])
      const replayed = yield* withBus(dir, (bus) =>
        Effect.all({ t: consumeAll(bus, "t", 5), u: consumeAll(bus, "u", 2), lag: bus.lag("t", "g") }), 1)
      assert.deepStrictEqual(replayed.t.map((r) => r.value), ["open0", "open1", "open2", "open3", "open4"])
      assert.deepStrictEqual(replayed.u.map((r) => r.value), ["other0", "other1"])
      assert.deepStrictEqual(replayed.t[0]!.headers, { traceparent: "t0" })
      // Marked: the consumer looks up whether they were stored before the crash.
      assert.deepStrictEqual([...replayed.t, ...replayed.u].map((r) => r.redelivered), Array(7).fill(true))
      // Everything was committed in the second run: a third finds nothing.
      assert.deepStrictEqual(segmentsIn(dir), [])
      const third = yield* withBus(dir, (bus) => Effect.all([bus.lag("t", "g"), bus.lag("u", "g")]))
      assert.deepStrictEqual(third, [0, 0])
    }))

  it.live("a segment goes once every record in it is committed; a clean stop with all committed leaves none", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      yield* withBus(dir, (bus) =>
        Effect.gen(function*() {
          // A segment per write: each publish its own.
          for (let i = 0; i < 4; i++) yield* bus.publish("t", records(`r${i}-`, 2))
          assert.strictEqual(segmentsIn(dir).length, 5, "four closed segments and the current one")
          yield* consumeAll(bus, "t", 8)
          assert.deepStrictEqual(segmentsIn(dir).length, 1, "only the current one")
        }), 1)
      assert.deepStrictEqual(segmentsIn(dir), [])
    }))

  it.live("a publish succeeds only once its record is in the journal", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      yield* withBus(dir, (bus) =>
        Effect.gen(function*() {
          yield* bus.publish("t", [{ key: "k", value: "written" }])
          const written = segmentsIn(dir).map((name) => readFileSync(join(dir, name), "utf8")).join("")
          assert.include(written, `"v":"written"`)
        }))
    }))

  it.live("records are written in the order they were put in their partitions, whichever publish's wait runs first", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const journal = BusJournal.makeJournal(dir, 1, 1024)
      const record = (offset: number): ConsumedRecord => ({ topic: "t", partition: 0, offset, key: "k", value: `v${offset}` })
      // Two publishes, each past its step into the partition; the second one's wait runs first.
      const first = journal.hooks.appended([record(0)])
      const second = journal.hooks.appended([record(1)])
      yield* second
      yield* first
      yield* journal.close
      const lines = readFileSync(join(dir, "bus-00000001.journal"), "utf8").trim().split("\n").map((line) => JSON.parse(line).v)
      assert.deepStrictEqual(lines, ["v0", "v1"])
    }))

  it.live("a line cut short by a crash is skipped; the lines before it are handed over", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const line = (o: number, v: string) => `${JSON.stringify({ t: "t", p: 0, o, k: "k", v })}\n`
      writeFileSync(join(dir, "bus-00000007.journal"), line(0, "a") + line(1, "b"))
      appendFileSync(join(dir, "bus-00000007.journal"), line(2, "c").slice(0, 12))
      const replayed = yield* withBus(dir, (bus) => consumeAll(bus, "t", 2))
      assert.deepStrictEqual(replayed.map((r) => r.value), ["a", "b"])
      assert.deepStrictEqual(segmentsIn(dir), [], "replayed, committed and stopped cleanly")
    }))

  it.live("segments left by a crash during a replay are all handed over, in their numbers' order (past 8 digits too)", () =>
    Effect.gen(function*() {
      const dir = freshDir()
      const line = (o: number, v: string) => `${JSON.stringify({ t: "t", p: 0, o, k: "k", v })}\n`
      // The older run's segment, and the one its replay was writing (its records again, then new ones).
      writeFileSync(join(dir, "bus-99999999.journal"), line(0, "a") + line(1, "b"))
      writeFileSync(join(dir, "bus-100000000.journal"), line(0, "a") + line(1, "b") + line(2, "c"))
      const replayed = yield* withBus(dir, (bus) => consumeAll(bus, "t", 5))
      // At least once: a and b twice (the consumer stores each once, looking replayed records up).
      assert.deepStrictEqual(replayed.map((r) => r.value), ["a", "b", "a", "b", "c"])
      assert.deepStrictEqual(segmentsIn(dir), [])
    }))

  it.live("a folder the journal cannot use fails the layer with a PortError", () =>
    Effect.gen(function*() {
      const file = join(freshDir(), "not-a-folder")
      writeFileSync(file, "")
      const exit = yield* Effect.exit(withBus(file, () => Effect.void))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "PortError")
    }))
})
