import { Context, Deferred, Effect, Layer, Schedule, Semaphore } from "effect"
import type { PortError } from "./PortError.ts"

export interface BusRecord {
  /** Records with the same key go to the same partition and are consumed in publish order. */
  readonly key: string
  readonly value: string
  /** Metadata handed to the consumer with the record, e.g. the sender's trace context (`traceparent`). */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

export interface ConsumedRecord extends BusRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: number
  /**
   * Whether the bus handed this record to a handler of the group before (a failed or interrupted
   * batch, or, from its journal, a record of the run before a restart), so that it may have been
   * handled already: `true` or `false` where the bus knows (the in-process bus), left out where
   * it cannot tell (Kafka: another consumer may have had it before a rebalance, or before a commit
   * that failed).
   */
  readonly redelivered?: boolean
}

export interface ConsumeOptions {
  readonly topic: string
  readonly group: string
  /** Most records handed to the handler at once. */
  readonly maxBatch: number
}

/**
 * Keyed publish and batched, at-least-once consumption in consumer groups.
 *
 * `consume` runs until interrupted. Each partition's records reach the handler in order, one
 * batch at a time; the group's offset moves past a batch only after the handler succeeded. A
 * failed batch is handed over again (after a backoff), and so is an uncommitted one when a
 * consumer of the group starts again.
 */
export class MessageBus extends Context.Service<MessageBus, {
  /** Succeeds once the bus has accepted every record. */
  readonly publish: (topic: string, records: ReadonlyArray<BusRecord>) => Effect.Effect<void, PortError>
  readonly consume: <E, R>(
    options: ConsumeOptions,
    handler: (batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E, R>
  ) => Effect.Effect<never, PortError, R>
  /** Records of the topic that the group has not committed yet. */
  readonly lag: (topic: string, group: string) => Effect.Effect<number, PortError>
}>()("@im/ports/MessageBus") {
  /**
   * An in-process bus with Kafka's ordering and redelivery rules. One consumer per group is
   * active at a time (a second one waits as a standby). Records every group has committed are
   * dropped. It knows what it handed over before, and says so (`redelivered`). Nothing survives
   * the process (BusJournal.layer's does: standalone's).
   */
  static readonly layerMemory = (options: {
    readonly partitions?: number
    /**
     * Backpressure: while a topic that a group consumes holds this many records not yet
     * committed by every group, `publish` waits for room. Unbounded by default.
     */
    readonly maxPending?: number
  } = {}) => Layer.sync(MessageBus, () => makeMemoryBus(options.partitions ?? 1, options.maxPending ?? Infinity))
}

/** What an in-process bus tells a journal (BusJournal.ts) that keeps its records across a crash. */
export interface MemoryBusJournal {
  /**
   * The records just added to their partitions, called in the same synchronous step (so the
   * journal takes them in their partitions' order); `publish` succeeds once the effect returned,
   * the wait for their write, has.
   */
  readonly appended: (records: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, PortError>
  /** Every group has committed the topic's partition below `offset`. */
  readonly committedBelow: (topic: string, partition: number, offset: number) => void
}

/** Delay before a failed batch is handed over again: grows to 5 s and stays there. */
export const redeliverySchedule = Schedule.min([Schedule.exponential("50 millis"), Schedule.spaced("5 seconds")])

/** The in-process bus, and what its journal needs of it. */
export type MemoryBus = MessageBus["Service"] & {
  /** `publish`, for records a handler may have had before (a journal's, after a restart): they are marked `redelivered`. */
  readonly republish: (topic: string, records: ReadonlyArray<BusRecord>) => Effect.Effect<void, PortError>
}

export const makeMemoryBus = (partitionCount: number, maxPending: number, journal?: MemoryBusJournal): MemoryBus => {
  interface Partition {
    records: Array<ConsumedRecord>
    /** Offset of records[0]. */
    base: number
    next: number
    wakeUp: Deferred.Deferred<void> | undefined
  }
  interface Topic {
    readonly name: string
    readonly partitions: ReadonlyArray<Partition>
    /** group → committed offset (next to read) per partition. */
    readonly committed: Map<string, Array<number>>
    /** group → per partition, the offset below which every record was handed to a handler of the group. */
    readonly handed: Map<string, Array<number>>
    readonly groupLocks: Map<string, Semaphore.Semaphore>
    /** Records held (not yet committed by every group), and publishers waiting for room. */
    retained: number
    room: Deferred.Deferred<void> | undefined
  }
  const topics = new Map<string, Topic>()

  const topicOf = (name: string): Topic => {
    let topic = topics.get(name)
    if (topic === undefined) {
      topic = {
        name,
        partitions: Array.from({ length: partitionCount }, () => ({ records: [], base: 0, next: 0, wakeUp: undefined })),
        committed: new Map(),
        handed: new Map(),
        groupLocks: new Map(),
        retained: 0,
        room: undefined
      }
      topics.set(name, topic)
    }
    return topic
  }

  const partitionFor = (key: string): number => {
    let hash = 0
    for (let i = 0; i < key.length; i++) hash = (Math.imul(hash, 31) + key.charCodeAt(i)) | 0
    return Math.abs(hash) % partitionCount
  }

  const trim = (topic: Topic, index: number) => {
    const partition = topic.partitions[index]!
    let low = partition.next
    for (const offsets of topic.committed.values()) low = Math.min(low, offsets[index]!)
    if (low > partition.base) {
      topic.retained -= low - partition.base
      partition.records = partition.records.slice(low - partition.base)
      partition.base = low
      journal?.committedBelow(topic.name, index, low)
    }
    if (topic.room !== undefined && topic.retained < maxPending) {
      Deferred.doneUnsafe(topic.room, Effect.void)
      topic.room = undefined
    }
  }

  /** Waits while the topic is full and some group consumes it (else nothing would make room). */
  const waitForRoom = (topic: Topic): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (topic.retained < maxPending || topic.committed.size === 0) return Effect.void
      const room = topic.room ?? (topic.room = Deferred.makeUnsafe<void>())
      return Effect.flatMap(Deferred.await(room), () => waitForRoom(topic))
    })

  const append = (name: string, records: ReadonlyArray<BusRecord>, redelivered: boolean) =>
    Effect.andThen(waitForRoom(topicOf(name)), Effect.suspend(() => {
      const topic = topicOf(name)
      topic.retained += records.length
      const added: Array<ConsumedRecord> = []
      for (const record of records) {
        const index = partitionFor(record.key)
        const partition = topic.partitions[index]!
        const consumed: ConsumedRecord = {
          topic: name,
          partition: index,
          offset: partition.next++,
          key: record.key,
          value: record.value,
          ...(record.headers === undefined ? {} : { headers: { ...record.headers } }),
          redelivered
        }
        partition.records.push(consumed)
        added.push(consumed)
        if (partition.wakeUp !== undefined) {
          Deferred.doneUnsafe(partition.wakeUp, Effect.void)
          partition.wakeUp = undefined
        }
      }
      return journal === undefined ? Effect.void : journal.appended(added)
    }))
  const publish = (name: string, records: ReadonlyArray<BusRecord>) => append(name, records, false)
  const republish = (name: string, records: ReadonlyArray<BusRecord>) => append(name, records, true)

  const consumePartition = <E, R>(
    topic: Topic,
    index: number,
    offsets: Array<number>,
    handed: Array<number>,
    options: ConsumeOptions,
    handler: (batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E, R>
  ): Effect.Effect<never, never, R> => {
    const partition = topic.partitions[index]!
    const nextBatch = Effect.suspend(function loop(): Effect.Effect<ReadonlyArray<ConsumedRecord>> {
      const from = offsets[index]! - partition.base
      if (from < partition.records.length) {
        return Effect.succeed(partition.records.slice(from, from + options.maxBatch))
      }
      const wakeUp = partition.wakeUp ?? (partition.wakeUp = Deferred.makeUnsafe<void>())
      return Effect.flatMap(Deferred.await(wakeUp), loop)
    })
    /** The batch as handed over now: its records this group's handlers had before are marked. */
    const handOver = (batch: ReadonlyArray<ConsumedRecord>): ReadonlyArray<ConsumedRecord> => {
      const before = handed[index]!
      handed[index] = Math.max(before, batch.at(-1)!.offset + 1)
      if (batch[0]!.offset >= before) return batch
      return batch.map((record) => record.offset < before && !record.redelivered ? { ...record, redelivered: true } : record)
    }
    const handleOnce = (batch: ReadonlyArray<ConsumedRecord>) =>
      Effect.suspend(() => handler(handOver(batch))).pipe(
        // Failures and defects alike: the batch stays uncommitted and is handed over again.
        Effect.sandbox,
        Effect.tapError((cause) =>
          Effect.logWarning("batch failed; it will be handed over again", cause).pipe(
            Effect.annotateLogs({ topic: options.topic, group: options.group, partition: index, offset: batch[0]!.offset })
          )
        ),
        Effect.retry(redeliverySchedule),
        Effect.orDie // unreachable: the schedule never ends
      )
    return nextBatch.pipe(
      Effect.flatMap((batch) =>
        Effect.flatMap(handleOnce(batch), () =>
          Effect.sync(() => {
            offsets[index] = batch.at(-1)!.offset + 1
            trim(topic, index)
          }))
      ),
      Effect.forever
    )
  }

  const consume = <E, R>(
    options: ConsumeOptions,
    handler: (batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E, R>
  ): Effect.Effect<never, PortError, R> =>
    Effect.suspend(() => {
      const topic = topicOf(options.topic)
      let lock = topic.groupLocks.get(options.group)
      if (lock === undefined) topic.groupLocks.set(options.group, lock = Semaphore.makeUnsafe(1))
      return lock.withPermits(1)(
        Effect.suspend(() => {
          let offsets = topic.committed.get(options.group)
          if (offsets === undefined) {
            // A new group starts at the oldest record still held, like auto.offset.reset=earliest.
            offsets = topic.partitions.map((p) => p.base)
            topic.committed.set(options.group, offsets)
          }
          const handed = topic.handed.get(options.group) ?? [...offsets]
          topic.handed.set(options.group, handed)
          const committed = offsets
          return Effect.forEach(
            topic.partitions,
            (_, index) => consumePartition(topic, index, committed, handed, options, handler),
            { concurrency: "unbounded", discard: true }
          )
        })
      ) as Effect.Effect<never, never, R>
    })

  const lag = (name: string, group: string) =>
    Effect.sync(() => {
      const topic = topicOf(name)
      const committed = topic.committed.get(group)
      return topic.partitions.reduce((sum, partition, index) => sum + partition.next - (committed?.[index] ?? partition.base), 0)
    })

  return { ...MessageBus.of({ publish, consume, lag }), republish }
}
