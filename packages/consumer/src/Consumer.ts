import * as Settings from "@im/ports/Settings"
import { Db } from "@im/db/Db"
import { ServiceUnavailable } from "@im/domain/Errors"
import type { GroupId, ServerId, UserId } from "@im/domain/Ids"
import { type Delivery, FANOUT_TOPIC, Message, MESSAGES_TOPIC, singleParticipants } from "@im/domain/Message"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import { GroupStore } from "@im/ports/GroupStore"
import { type InboxRef, storedSeqOf, withStoredSeqs } from "@im/ports/InboxStore"
import { type ConsumedRecord, MessageBus } from "@im/ports/MessageBus"
import { SeqStore } from "@im/ports/SeqStore"
import * as Vital from "@im/ports/Vital"
import { Pusher } from "@im/pusher/Pusher"
import { DEFAULT_PUSH_AHEAD, pushAhead } from "./PushAhead.ts"
import { Cause, Config, Context, Deferred, Duration, Effect, Exit, Layer, LogLevel, Metric, Queue, Schedule, Schema, type Scope, Semaphore } from "effect"

const decodeParsed = Schema.decodeUnknownExit(Message)

/**
 * A record's message, or why it is not one. `JSON.parse` and then the struct, rather than
 * `Schema.fromJsonString(Message)`: that one runs each decode in a fiber of its own, a fiber
 * per message consumed; the struct alone decodes without one.
 */
const decodeMessage = (value: string): Exit.Exit<Message, unknown> => {
  let json: unknown
  try {
    json = JSON.parse(value)
  } catch (error) {
    return Exit.fail(error)
  }
  return decodeParsed(json)
}

/** One inbox entry to store: `message` in `user`'s inbox. */
interface PlannedEntry {
  readonly user: UserId
  readonly message: Message
}

/** The most inbox entries the consumer stores and pushes in one step (CONSUMER_MAX_ENTRIES). */
export const DEFAULT_MAX_ENTRIES = 10_000

/**
 * The most messages in one call of the consumer (CONSUMER_MAX_BATCH): a partition's batch, and
 * the batches merged into one call. Under a backlog every call pays its round trips to db and
 * the pusher once for this many; 500 made the standalone server's two partitions share 500 a
 * call once they were merged, and 2,000 delivered 15 % more (docs/benchmarks.md).
 */
export const DEFAULT_MAX_BATCH = 2_000

/**
 * How many merged batches the consumer works at once (CONSUMER_CONCURRENCY). Their steps take
 * turns (`inTurn`): above 1, a step's lookups overlap the save of the step before it.
 */
export const DEFAULT_CONCURRENCY = 1

/**
 * The topics the consumer reads (busTopicOf), each in a consumer group of its own: kafkajs's
 * assignor hands a group's members partitions of every topic any of them reads, so one group
 * must read one set of topics everywhere. The messages topic keeps
 * the group its consumers always had (CONSUMER_GROUP), so its committed offsets carry over.
 */
export const lanesOf = (group: string): ReadonlyArray<{ readonly topic: string; readonly group: string }> => [
  { topic: MESSAGES_TOPIC, group },
  { topic: FANOUT_TOPIC, group: `${group}.fanout` }
]

/** Where a record sits on the bus: what marks a batch (its first record's) as failed before. */
const recordKey = (record: ConsumedRecord) => `${record.topic}/${record.partition}/${record.offset}`

/**
 * Folds the batches handed over at once into one call of `handler`. The bus hands each
 * partition's batches over one at a time and concurrently across partitions; a consumer with
 * several partitions would make several calls to db and the pusher per round, each paying a
 * round trip for a few records. Here a batch that arrives while `concurrency` calls are running
 * waits, and the batches waiting when a call ends go into the next call together, up to
 * `maxRecords` records (a larger batch goes alone): under load the calls grow instead of
 * multiplying. Each caller gets the outcome of the call its records were in (a failure fails
 * all of them, and the bus hands each over again). A batch that arrives with a call free goes
 * at once.
 *
 * A batch whose call failed goes alone when it comes back, until a call of its own succeeds:
 * one batch that keeps failing (a record db refuses every time) holds back only its own
 * partition, not every partition that happened to be merged with it.
 *
 * Each partition's order holds: the bus hands over a partition's next batch only after the
 * previous one's call succeeded. When the merging stops (its scope closes), every batch still
 * waiting, or handed over later, is interrupted, and so is the call in flight: no caller waits
 * for ever (the bus counts an interrupted batch as not handled, and hands it over again while
 * it still runs).
 */
export const coalesceBatches = <E, R>(
  handler: (batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E, R>,
  options: { readonly concurrency: number; readonly maxRecords: number }
): Effect.Effect<(batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    interface Waiting {
      readonly records: ReadonlyArray<ConsumedRecord>
      /** Where the batch starts: the bus hands a failed batch over again from the same record. */
      readonly key: string
      /** Its last call failed: it goes alone. */
      readonly alone: boolean
      readonly done: Deferred.Deferred<void, E>
    }
    const arriving = yield* Queue.unbounded<Waiting>()
    const calls = yield* Semaphore.make(options.concurrency)
    /** The starts of the batches whose last call failed and which have not come back yet. */
    const failed = new Set<string>()
    // Every caller hears how its call ended, even an interrupted one; a throwing handler is a
    // defect of the call, not of the merging.
    const work = (group: ReadonlyArray<Waiting>) =>
      Effect.suspend(() => handler(group.length === 1 ? group[0]!.records : group.flatMap(({ records }) => records))).pipe(
        Effect.onExit((exit) =>
          Effect.andThen(
            Effect.forEach(group, ({ done, key }) => {
              if (Exit.isFailure(exit)) failed.add(key)
              return Deferred.done(done, exit)
            }, { discard: true }),
            Semaphore.release(calls, 1)
          )
        )
      )
    /** Batches taken from `arriving` that no call has taken yet, in arrival order. */
    const waiting: Array<Waiting> = []
    // Without it no batch would be handled again (Vital: the service stops).
    yield* Vital.forkScoped("merging the bus's batches", Effect.gen(function*() {
      if (waiting.length === 0) waiting.push(yield* Queue.take(arriving))
      yield* Semaphore.take(calls, 1)
      // Whatever queued up while every call was busy goes with the first, as far as it fits.
      waiting.push(...(yield* Queue.clear(arriving)))
      let records = waiting[0]!.records.length
      let count = 1
      while (
        !waiting[0]!.alone && count < waiting.length && !waiting[count]!.alone &&
        records + waiting[count]!.records.length <= options.maxRecords
      ) {
        records += waiting[count++]!.records.length
      }
      // The calls are this fiber's children: they stop when it stops, which is after everything
      // added to the scope later (the consuming fiber, the consumer's drain). Started at once, so
      // that a call stopped before its first step still tells its callers (its onExit is set).
      yield* Effect.forkChild(work(waiting.splice(0, count)), { startImmediately: true })
    }).pipe(
      Effect.forever,
      Effect.ensuring(Effect.gen(function*() {
        // No more batches are taken; those taken and not worked are let go.
        yield* Queue.interrupt(arriving)
        // An interrupted queue left empty is done, and clearing it fails: nothing was buffered.
        const buffered = yield* Effect.exit(Queue.clear(arriving))
        const left = [...waiting.splice(0), ...(Exit.isSuccess(buffered) ? buffered.value : [])]
        yield* Effect.forEach(left, ({ done }) => Deferred.interrupt(done), { discard: true })
      }))
    ))
    return (records: ReadonlyArray<ConsumedRecord>) =>
      Effect.gen(function*() {
        const first = records[0]
        const key = first === undefined ? "" : recordKey(first)
        const done = yield* Deferred.make<void, E>()
        const offered = yield* Queue.offer(arriving, { records, key, alone: failed.delete(key), done })
        return offered ? yield* Deferred.await(done) : yield* Effect.interrupt
      })
  })

/**
 * The consumer: turns a batch of accepted messages into inbox entries. For every participant of
 * every message (receiver and sender; for a group, its members and the sender; for a notice, the
 * users it names) it takes the participant's next seq (a replay finds the stored entry and keeps
 * its seq), stores history and entries through db, pushes them, and only then lets the bus
 * commit the batch.
 *
 * A batch is worked in steps of at most `maxEntries` entries (a message with more participants
 * is a step of its own), in order: 2,000 messages to a group of 500 are 1,000,000 entries, which no
 * single call to db should carry (its deadline would pass, and the retried batch with it, for
 * ever). A step stored before a later one failed is found again on the retry and keeps its seqs.
 */
export class Consumer extends Context.Service<Consumer, {
  readonly handleBatch: (records: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, ServiceUnavailable>
}>()("@im/consumer/Consumer") {
  /** The consumer; it stores at most `maxEntries` inbox entries per call to db. */
  static readonly make = (maxEntries: number = DEFAULT_MAX_ENTRIES) => Effect.gen(function*() {
    const db = yield* Db
    const seqs = yield* SeqStore
    const pusher = yield* Pusher
    const groups = yield* GroupStore
    const stepExisting = Metrics.consumerStepDuration({ phase: "existing" })
    const stepSeqs = Metrics.consumerStepDuration({ phase: "seqs" })
    const stepSave = Metrics.consumerStepDuration({ phase: "save" })
    const stepPush = Metrics.consumerStepDuration({ phase: "push" })

    const handle = Effect.fnUntraced(function*(records: ReadonlyArray<ConsumedRecord>, lookUp: boolean) {
      const messages: Array<Message> = []
      const seen = new Set<ServerId>()
      for (const record of records) {
        const decoded = decodeMessage(record.value)
        if (decoded._tag === "Failure") {
          // Retrying cannot fix it; it is logged with its position and skipped.
          yield* Metrics.error("consumer", "undecodable_record")
          yield* Effect.logError("undecodable record skipped", {
            partition: record.partition,
            offset: record.offset,
            cause: String(decoded.cause).slice(0, 500)
          })
          continue
        }
        if (seen.has(decoded.value.server_id)) continue
        seen.add(decoded.value.server_id)
        messages.push(decoded.value)
      }
      // A notice goes to the users it names; the list itself is neither stored nor delivered.
      const noticeRecipients = new Map<ServerId, ReadonlyArray<UserId>>()
      for (const [i, message] of messages.entries()) {
        if (message.kind !== "notice") continue
        const { to, ...stored } = message
        noticeRecipients.set(message.server_id, [...new Set(to ?? [])])
        messages[i] = stored
      }
      if (messages.length === 0) return

      // A group message goes to the group's members as they are now, and to its sender.
      const members = new Map<GroupId, ReadonlyArray<UserId>>()
      for (const message of messages) {
        if (message.kind !== "group" || members.has(message.group_id!)) continue
        const current = yield* groups.members(message.group_id!).pipe(
          Effect.catchTag("PortError", (error) =>
            Effect.logError("group members unavailable", error).pipe(
              Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "group store unavailable" })))
            ))
        )
        members.set(message.group_id!, current.map((member) => member.user_id))
      }
      const participants = (message: Message): ReadonlyArray<UserId> =>
        message.kind === "group"
          ? [...new Set([...members.get(message.group_id!)!, message.sender_id])]
          : message.kind === "notice"
          ? noticeRecipients.get(message.server_id)!
          : singleParticipants(message)
      let step: Array<PlannedEntry> = []
      for (const message of messages) {
        const users = participants(message)
        if (step.length > 0 && step.length + users.length > maxEntries) {
          yield* store(step, lookUp)
          step = []
        }
        for (const user of users) step.push({ user, message })
      }
      if (step.length > 0) yield* store(step, lookUp)
    })

    /**
     * The turns of the steps of the calls running at once (CONSUMER_CONCURRENCY): a step takes
     * its seqs (`taking`), then waits for its turn to save and push (`saving`), and only then
     * lets the next step take seqs. So one step's seqs are taken while the step before saves and
     * pushes, and the saves and pushes go one at a time, in the order the seqs were taken: a
     * user's entries of this topic (each lane has its consumer and its turns) are stored and
     * pushed in seq order, whatever the number of calls, and of steps in each.
     */
    const taking = yield* Semaphore.make(1)
    const saving = yield* Semaphore.make(1)
    const inTurn = <A, B, E1, E2>(take: Effect.Effect<A, E1>, save: (taken: A) => Effect.Effect<B, E2>) =>
      Effect.scoped(Effect.gen(function*() {
        // The turn to save is released with the scope, after `save`, however it ends.
        const taken = yield* Semaphore.withPermit(taking, Effect.tap(take, () => Semaphore.takeScoped(saving, 1)))
        return yield* save(taken)
      }))

    /**
     * Stores and pushes the entries of `plan`, in order: every message's participants, each with
     * its next seq. The seqs are taken while db looks for entries stored before (in the cluster
     * two calls at once, to db and Redis, instead of one after the other; only when `lookUp`, see
     * handleBatch), as if none were: usually none is, and a replayed entry keeps its stored seq
     * and the one taken for it goes back (`giveBackUnused`).
     * Another step may be saving meanwhile (`inTurn`), so the lookup may miss what it is storing:
     * in this process that is never this step's entries (a partition's next batch comes only
     * once its call succeeded, and a call's messages are distinct); from another consumer (a
     * rebalance) or a save that timed out but went through, `db.save` answers the entries stored
     * before (`earlier`), which are pushed under their stored seqs, as without the turns.
     */
    const store = (plan: ReadonlyArray<PlannedEntry>, lookUp: boolean) => inTurn(take(plan, lookUp), save)

    /** A step's seqs and the entries stored before (if it looks them up): its entries, ready to save. */
    const take = Effect.fnUntraced(function*(plan: ReadonlyArray<PlannedEntry>, lookUp: boolean) {
      const messages = [...new Set(plan.map(({ message }) => message))]
      const wanted = new Map<UserId, number>()
      for (const { user } of plan) wanted.set(user, (wanted.get(user) ?? 0) + 1)
      const [existing, firsts] = yield* Effect.all([
        lookUp
          ? db.existing(plan.map(({ message, user }) => ({ user_id: user, server_id: message.server_id }))).pipe(
            Metrics.timed(stepExisting)
          )
          : Effect.succeed([]),
        seqs.allocate([...wanted]).pipe(
          Effect.catchTag("PortError", (error) =>
            Effect.logError("seq allocation failed", error).pipe(
              Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "seq store unavailable" })))
            )),
          Metrics.timed(stepSeqs)
        )
      ], { concurrency: 2 })
      const next = new Map(firsts)
      // Usually nothing is stored yet (replays are rare): then no entry needs a key.
      const storedSeq = storedSeqOf(existing)

      const fresh: Array<InboxRef> = []
      const replayed: Array<InboxRef> = []
      const deliveries: Array<Delivery> = []
      for (const { message, user } of plan) {
        let seq = storedSeq(user, message.server_id)
        if (seq === undefined) {
          seq = next.get(user)!
          next.set(user, seq + 1)
          fresh.push({ user_id: user, seq, server_id: message.server_id })
        } else {
          replayed.push({ user_id: user, seq, server_id: message.server_id })
        }
        deliveries.push({ user_id: user, seq, message })
      }
      if (replayed.length > 0) yield* giveBackUnused(firsts, wanted, next)
      return { messages, fresh, replayed, deliveries }
    })

    /**
     * A replayed entry keeps the number it was stored with, so its user's block ends in numbers
     * taken and not used: they go back where no other call took numbers since (in the cluster,
     * the other lane or another consumer may have), so a replay spends no number; else they stay
     * skipped (a pull reports them).
     */
    const giveBackUnused = (firsts: ReadonlyMap<UserId, number>, wanted: ReadonlyMap<UserId, number>, next: ReadonlyMap<UserId, number>) => {
      const ranges = [...wanted].flatMap(([user, count]) => {
        const reservedUpTo = firsts.get(user)! + count - 1
        const handedUpTo = next.get(user)! - 1
        return handedUpTo < reservedUpTo ? [{ user, handedUpTo, reservedUpTo }] : []
      })
      return ranges.length === 0 ? Effect.void : seqs.giveBack(ranges).pipe(
        Effect.catchTag("PortError", (error) => Effect.logWarning("seqs a replay did not use were not given back; they stay skipped", error))
      )
    }

    /** Saves a step's entries and pushes them. */
    const save = Effect.fnUntraced(function*({ deliveries, fresh, messages, replayed }: {
      readonly messages: ReadonlyArray<Message>
      readonly fresh: ReadonlyArray<InboxRef>
      readonly replayed: ReadonlyArray<InboxRef>
      readonly deliveries: ReadonlyArray<Delivery>
    }) {
      const earlier = yield* db.save(messages, fresh, replayed).pipe(Metrics.timed(stepSave))
      if (yield* LogLevel.isEnabled("Debug")) {
        yield* Effect.logDebug("stored", { entries: fresh.map((ref) => `${ref.server_id}@${ref.user_id}#${ref.seq}`), earlier: earlier.length })
      }
      // Usually none: another consumer handed the same batch (a rebalance) stored these first.
      // Their entries are pushed under the numbers they hold; the ones taken here stay unused.
      yield* pusher.push(withStoredSeqs(deliveries, earlier, (delivery) => delivery.message.server_id)).pipe(Metrics.timed(stepPush))
    })

    /**
     * One span per batch, continuing the trace of the batch's first message (its publisher's
     * span, from the record headers) and linking the others'; counted and timed by its topic
     * (a batch, merged or not, is one lane's).
     *
     * The entries stored before are looked up (to keep their seqs) for a batch holding a record
     * the bus may have handed over before (`redelivered`, or a bus that cannot tell: Kafka, where
     * after a rebalance, or a commit that failed, another consumer may have stored it). The
     * in-process bus knows (a batch it hands over again after a failure, an interruption, or from
     * its journal after a restart): its other batches go straight to their seqs, a round trip to
     * the database fewer.
     */
    const handleBatch = (records: ReadonlyArray<ConsumedRecord>) => {
      const topic = records[0]?.topic ?? "none"
      const lookUp = records.some((record) => record.redelivered !== false)
      return Effect.andThen(Metric.update(Metrics.consumerBatchSize({ topic }), records.length), handle(records, lookUp)).pipe(
        Effect.tap(() =>
          Effect.andThen(
            Metrics.increment(Metrics.consumerBatches({ topic, outcome: "ok" })),
            Metrics.increment(Metrics.consumerRecords({ topic }), records.length)
          )
        ),
        Effect.tapCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.void
            : Effect.andThen(Metrics.increment(Metrics.consumerBatches({ topic, outcome: "failed" })), Metrics.error("consumer", "batch_failed"))
        ),
        Metrics.timed(Metrics.consumerBatchDuration({ topic })),
        TraceContext.span("Consumer.handleBatch", TraceContext.batchSpanOptions(records))
      )
    }

    return Consumer.of({ handleBatch })
  })

  /**
   * The consumer service, consuming the bus's topics while the layer is alive: each topic
   * (lanesOf) with a consumer group, merged calls, call slots and a line of pushes
   * (pushAhead, CONSUMER_PUSH_AHEAD) of its own, so that a group's fan-out backlog never holds
   * a one-to-one chat's messages. With CONSUMER_PUSH_AHEAD above 0 a lane's steps push through
   * its line: the bus commits a batch once it is stored, and its pushes follow in store order
   * while the next batch is stored. The service is the one-to-one lane's consumer.
   */
  static readonly layer = Layer.effect(
    Consumer,
    Effect.gen(function*() {
      const bus = yield* MessageBus
      const options = yield* Config.all({
        group: Config.String("CONSUMER_GROUP").pipe(Config.withDefault("im-consumer")),
        maxBatch: Settings.int("CONSUMER_MAX_BATCH", DEFAULT_MAX_BATCH, { minimum: 1 }),
        maxEntries: Settings.int("CONSUMER_MAX_ENTRIES", DEFAULT_MAX_ENTRIES, { minimum: 1 }),
        concurrency: Settings.int("CONSUMER_CONCURRENCY", DEFAULT_CONCURRENCY, { minimum: 1 }),
        pushAhead: Settings.int("CONSUMER_PUSH_AHEAD", DEFAULT_PUSH_AHEAD, { minimum: 0 }),
        drainTimeout: Settings.durationOrZero("CONSUMER_DRAIN_TIMEOUT", Duration.seconds(10)),
        lagInterval: Settings.positiveDuration("CONSUMER_LAG_INTERVAL", Duration.seconds(5))
      })
      const pusher = yield* Pusher
      const lanes = lanesOf(options.group)
      // Each lane pushes (ahead, if asked) in a line of its own, so a group's fan-out never
      // waits for a one-to-one chat's pushes, nor they for it. All made before any lane's merging
      // and consuming, so that they stop after every lane stopped storing, and push what was stored.
      const laneConsumers = yield* Effect.forEach(lanes, (lane) =>
        pushAhead(pusher, { capacity: options.pushAhead, maxEntries: options.maxEntries, drainTimeout: options.drainTimeout }).pipe(
          Effect.flatMap((lanePusher) => Consumer.make(options.maxEntries).pipe(Effect.provideService(Pusher, lanePusher))),
          Effect.map((consumer) => ({ lane, consumer }))
        ))
      for (const { consumer, lane } of laneConsumers) {
        // Made before the consuming fiber, so that it stops after it.
        const handle = yield* coalesceBatches(consumer.handleBatch, { concurrency: options.concurrency, maxRecords: options.maxBatch })
        // A lane whose consuming stops for good (the bus gives up) stops the service (Vital):
        // the other lane going on alone would look healthy with every group, or every chat, stopped.
        yield* Vital.forkScoped(`consuming ${lane.topic} (group ${lane.group})`, bus.consume({ ...lane, maxBatch: options.maxBatch }, handle))
      }
      // Runs before the forks above are interrupted: on shutdown, finish what was accepted.
      // The lanes drain at once, each within the timeout, and each says how it ended.
      yield* Effect.addFinalizer(() =>
        Effect.forEach(lanes, ({ group, topic }) =>
          bus.lag(topic, group).pipe(
            Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (lag) => lag === 0 }),
            Effect.timeout(options.drainTimeout),
            Effect.tap(() => Effect.logInfo("consumer drained")),
            Effect.catchCause((cause) => Effect.logWarning("consumer stopped before draining the bus", cause)),
            Effect.annotateLogs({ topic, group })
          ), { concurrency: "unbounded", discard: true })
      )
      // Each group's lag as a gauge, sampled (untraced: it is not work on a message).
      for (const { group, topic } of lanes) {
        const lag = Metrics.consumerLag({ topic, group })
        yield* bus.lag(topic, group).pipe(
          Effect.flatMap((records) => Metric.update(lag, records)),
          Effect.catch((error) => Effect.logDebug("consumer lag unavailable", error)),
          Effect.repeat(Schedule.spaced(options.lagInterval)),
          Effect.withTracerEnabled(false),
          Effect.forkScoped
        )
      }
      return laneConsumers[0]!.consumer
    }).pipe(Effect.annotateLogs({ service: "consumer" }))
  )
}
