import { Deferred, Effect, Layer } from "effect"
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from "node:fs"
import { join } from "node:path"
import { type BusRecord, makeMemoryBus, MessageBus, type MemoryBusJournal } from "./MessageBus.ts"
import { PortError } from "./PortError.ts"

/**
 * A segment is closed, and a new one begun, once it holds this many bytes (about 1,700 messages
 * of a few hundred characters). A closed segment goes once every record in it is committed, so
 * after a crash the next start hands over again what was not committed and at most this much
 * that was (each kept once: the consumer looks up replayed records).
 */
export const DEFAULT_SEGMENT_BYTES = 1024 * 1024

export interface JournalOptions {
  /** The folder of the journal's segments (standalone: `DATA_DIR/bus`). */
  readonly dir: string
  readonly partitions?: number
  /** As MessageBus.layerMemory's. */
  readonly maxPending?: number
  readonly segmentBytes?: number
}

/** One line of a segment: a record, and where the bus put it (for a person reading the file; a replay puts it anew). */
interface Line {
  readonly t: string
  readonly p: number
  readonly o: number
  readonly k: string
  readonly v: string
  readonly h?: Readonly<Record<string, string>>
}

interface Segment {
  readonly path: string
  bytes: number
  /** `topic/partition` → the newest offset written to this segment. */
  readonly newest: Map<string, number>
}

const SEGMENT_NAME = /^bus-(\d+)\.journal$/
const segmentNumber = (name: string) => Number(SEGMENT_NAME.exec(name)![1])
const segmentPath = (dir: string, number: number) => join(dir, `bus-${String(number).padStart(8, "0")}.journal`)
const positionKey = (topic: string, partition: number) => `${topic}/${partition}`

const journalError = (cause: unknown) => new PortError({ port: "MessageBus", operation: "journal", retryable: false, cause })

const isLine = (value: unknown): value is Line => {
  if (typeof value !== "object" || value === null) return false
  const line = value as Record<string, unknown>
  return typeof line.t === "string" && typeof line.k === "string" && typeof line.v === "string" &&
    (line.h === undefined || (typeof line.h === "object" && line.h !== null))
}

/** What the segments left by the last run hold, in the order it published them. */
const readSegments = (dir: string) => {
  const names = readdirSync(dir).filter((name) => SEGMENT_NAME.test(name)).sort((a, b) => segmentNumber(a) - segmentNumber(b))
  const records: Array<{ readonly topic: string; readonly record: BusRecord }> = []
  let unreadable = 0
  for (const name of names) {
    for (const text of readFileSync(join(dir, name), "utf8").split("\n")) {
      if (text === "") continue
      // A crash in the middle of a write leaves the segment's last line cut short.
      let line: unknown
      try {
        line = JSON.parse(text)
      } catch {
        unreadable++
        continue
      }
      if (!isLine(line)) {
        unreadable++
        continue
      }
      records.push({ topic: line.t, record: { key: line.k, value: line.v, ...(line.h === undefined ? {} : { headers: line.h }) } })
    }
  }
  const last = names.length === 0 ? 0 : segmentNumber(names.at(-1)!)
  return { paths: names.map((name) => join(dir, name)), records, unreadable, last }
}

/**
 * The segments the bus writes to and deletes: records are written in batches (every record
 * published in one turn of the event loop, in one write), and a closed segment is deleted once
 * every group has committed every record in it. (Exported for its tests; the bus is `layer`.)
 */
export const makeJournal = (dir: string, first: number, segmentBytes: number) => {
  let number = first
  const open = (): Segment => ({ path: segmentPath(dir, number), bytes: 0, newest: new Map() })
  let current = open()
  /** The current segment's file; undefined after it could not be opened (the next write tries again). */
  let fd: number | undefined = openSync(current.path, "a")
  const closed: Array<Segment> = []
  /** `topic/partition` → the offset every group has committed below. */
  const committedBelow = new Map<string, number>()
  let pending: Array<string> = []
  let waiting: Array<Deferred.Deferred<void, PortError>> = []
  let flushing = false

  const isCommitted = (segment: Segment) => {
    for (const [key, newest] of segment.newest) {
      if (newest >= (committedBelow.get(key) ?? 0)) return false
    }
    return true
  }

  /** Deletes the closed segments every group is done with; one that cannot be deleted now is tried again later. */
  const deleteCommitted = () => {
    for (let i = closed.length - 1; i >= 0; i--) {
      if (!isCommitted(closed[i]!)) continue
      try {
        unlinkSync(closed[i]!.path)
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code !== "ENOENT") continue
      }
      closed.splice(i, 1)
    }
  }

  /** Closes the current segment (kept until its records are committed) and begins the next. */
  const nextSegment = () => {
    if (fd !== undefined) {
      const closing = fd
      fd = undefined
      closeSync(closing)
    }
    closed.push(current)
    number++
    current = open()
    fd = openSync(current.path, "a")
  }

  /** Writes what is pending, all of it, in one write; a segment that grew past `segmentBytes` is closed. */
  const flush = () => {
    flushing = false
    const lines = pending
    const waiters = waiting
    pending = []
    waiting = []
    if (waiters.length === 0) return
    let failure: PortError | undefined
    try {
      fd ??= openSync(current.path, "a")
      const data = Buffer.from(lines.join(""))
      for (let at = 0; at < data.length;) at += writeSync(fd, data, at)
      current.bytes += data.length
    } catch (cause) {
      failure = journalError(cause)
    }
    // After a failed write the segment may end in a line cut short: the next go to a new one.
    if (failure !== undefined || current.bytes >= segmentBytes) {
      try {
        nextSegment()
      } catch {
        // The new segment could not be opened: the next write tries again.
      }
      deleteCommitted()
    }
    const outcome = failure === undefined ? Effect.void : Effect.fail(failure)
    for (const waiter of waiters) Deferred.doneUnsafe(waiter, outcome)
  }

  const hooks: MemoryBusJournal = {
    appended: (records) => {
      if (records.length === 0) return Effect.void
      // Taken now, in the step that put them in their partitions: lines in offset order.
      for (const record of records) {
        const line: Line = {
          t: record.topic,
          p: record.partition,
          o: record.offset,
          k: record.key,
          v: record.value,
          ...(record.headers === undefined ? {} : { h: record.headers })
        }
        pending.push(`${JSON.stringify(line)}\n`)
        const key = positionKey(record.topic, record.partition)
        current.newest.set(key, Math.max(record.offset, current.newest.get(key) ?? -1))
      }
      const written = Deferred.makeUnsafe<void, PortError>()
      waiting.push(written)
      if (!flushing) {
        flushing = true
        // Everything published in this turn of the event loop goes in one write.
        setImmediate(flush)
      }
      return Deferred.await(written)
    },
    committedBelow: (topic, partition, offset) => {
      committedBelow.set(positionKey(topic, partition), offset)
      if (closed.length > 0) deleteCommitted()
    }
  }

  /** Writes what is pending; the segments whose every record was committed go (after a clean stop that stored everything, all). */
  const close = Effect.sync(() => {
    flush()
    if (fd !== undefined) closeSync(fd)
    fd = undefined
    closed.push(current)
    deleteCommitted()
    return closed.length
  })

  return { hooks, close }
}

/**
 * MessageBus.layerMemory's bus with a journal in `dir`: standalone's. Every record is written to
 * the journal before `publish` succeeds, so a record the bus accepted (a send acknowledged)
 * survives a crash of the process (not of the machine: nothing is synced to disk, as PGlite syncs
 * nothing either). On start, the records of the segments left by the last run are published again
 * before anything else, in their order, marked `redelivered` (the consumer looks up whether
 * they were stored before), and those segments are deleted once they are in the new one. After
 * a clean stop, with every record committed, nothing is left to replay. A write that fails fails
 * its publishes (a send is answered `unavailable`): their records are in the bus already and may
 * still be stored, as after a send that timed out, and a send again is kept once.
 */
export const layer = (options: JournalOptions): Layer.Layer<MessageBus, PortError> =>
  Layer.effect(
    MessageBus,
    Effect.gen(function*() {
      const found = yield* Effect.try({
        try: () => {
          mkdirSync(options.dir, { recursive: true })
          return readSegments(options.dir)
        },
        catch: journalError
      })
      const journal = yield* Effect.acquireRelease(
        Effect.try({ try: () => makeJournal(options.dir, found.last + 1, options.segmentBytes ?? DEFAULT_SEGMENT_BYTES), catch: journalError }),
        (journal) =>
          journal.close.pipe(
            Effect.flatMap((left) => left > 0 ? Effect.logInfo("bus journal kept for the next start", { segments: left, dir: options.dir }) : Effect.void),
            Effect.catchDefect((cause) => Effect.logError("closing the bus journal failed", cause))
          )
      )
      const bus = makeMemoryBus(options.partitions ?? 1, options.maxPending ?? Infinity, journal.hooks)
      if (found.unreadable > 0) {
        yield* Effect.logWarning("bus journal: lines that could not be read were skipped (a write cut short by a crash)", {
          lines: found.unreadable
        })
      }
      if (found.records.length > 0) {
        // In publish order; each topic's records go in one publish, which keeps their order.
        const byTopic = new Map<string, Array<BusRecord>>()
        for (const { record, topic } of found.records) {
          const records = byTopic.get(topic)
          if (records === undefined) byTopic.set(topic, [record])
          else records.push(record)
        }
        for (const [topic, records] of byTopic) yield* bus.republish(topic, records)
        yield* Effect.logInfo("bus journal: records of the last run handed over again", { records: found.records.length })
      }
      // Their records are in the new segment now. One left behind is replayed again next time,
      // which stores nothing twice (the consumer looks replayed records up).
      for (const path of found.paths) {
        yield* Effect.try({ try: () => unlinkSync(path), catch: (cause) => cause }).pipe(
          Effect.catch((cause) =>
            (cause as NodeJS.ErrnoException).code === "ENOENT"
              ? Effect.void
              : Effect.logWarning("bus journal: a replayed segment could not be deleted", { path, cause: String(cause) }))
        )
      }
      return bus
    })
  )
