import * as Settings from "@im/ports/Settings"
import * as Metrics from "@im/observability/Metrics"
import * as TraceContext from "@im/observability/TraceContext"
import {
  type BusRecord,
  type ConsumedRecord,
  type ConsumeOptions,
  MessageBus,
  redeliverySchedule
} from "@im/ports/MessageBus"
import { PortError } from "@im/ports/PortError"
import { Cause, Clock, Config, Deferred, Duration, Effect, Exit, Layer, Queue, Schedule, type Scope } from "effect"
import { type Admin, type EachBatchPayload, Kafka, type KafkaMessage, logLevel, Partitioners } from "kafkajs"
import * as Vital from "@im/ports/Vital"
import { stopIdleRequestChecks } from "./RequestQueueFix.ts"

export interface KafkaMessageBusOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  /** Partitions of the topics this bus creates; also how many partitions one consumer handles at once. */
  readonly partitions: number
  readonly replicationFactor?: number | undefined
  /** How long start-up waits for a broker before failing. */
  readonly connectTimeout?: Duration.Input | undefined
  /** How often a consumer tells the group it is alive while a handler runs. */
  readonly heartbeatInterval?: Duration.Input | undefined
  /** A consumer silent this long leaves the group and its partitions move (at least 6 s on a default broker). */
  readonly sessionTimeout?: Duration.Input | undefined
  /** How long the next produce request waits for more publishes once it has one (see `lingerOf`); none by default. */
  readonly produceLinger?: Duration.Input | undefined
}

const PORT = "MessageBus"

/** Most publish calls folded into one produce request (a request stays well under 1 MiB). */
const MAX_PUBLISHES_PER_REQUEST = 500

const levelNames: Record<number, string> = {
  [logLevel.ERROR]: "error",
  [logLevel.WARN]: "warn",
  [logLevel.INFO]: "info",
  [logLevel.DEBUG]: "debug"
}

interface KafkaErrorLike {
  readonly name?: string
  readonly retriable?: boolean
  readonly type?: string
  readonly cause?: unknown
}

/**
 * kafkajs marks its errors `retriable`; when its own retries run out it wraps the last error in
 * a non-retriable KafkaJSNumberOfRetriesExceeded (or KafkaJSNonRetriableError), which is still
 * worth a later try if what it wraps was (kafkajs decides whether to restart a crashed consumer
 * by that too).
 */
export const isRetryable = (cause: unknown): boolean => {
  if (typeof cause !== "object" || cause === null) return false
  const error = cause as KafkaErrorLike
  if (error.name === "KafkaJSNumberOfRetriesExceeded") return isRetryable(error.cause)
  if (error.name === "KafkaJSNonRetriableError" && error.cause !== undefined && error.cause !== cause) return isRetryable(error.cause)
  // kafkajs marks it non-retriable (and does not restart a consumer it crashed), yet it is what a
  // broker restarting gives for a while: no coordinator for the group yet (tulios/kafkajs#1630).
  if (error.name === "KafkaJSGroupCoordinatorNotFound") return true
  return error.retriable === true
}

/** How `keepConsuming` starts a consumer again. */
export interface ConsumeRestarts {
  /** Before the first restart after a consumer joined its group; each next one waits twice as long, up to `maxDelay`. */
  readonly delay: Duration.Input
  readonly maxDelay: Duration.Input
  /** How long consumers may keep failing, from the first failure, without one joining its group; then it fails. */
  readonly giveUpAfter: Duration.Input
}

export const defaultConsumeRestarts: ConsumeRestarts = { delay: "1 second", maxDelay: "15 seconds", giveUpAfter: "2 minutes" }

/**
 * Runs `life` (one consumer's life, which calls `joined` each time it joins its group) again
 * after a retryable failure: every crash of a kafkajs consumer ends its life here (kafkajs is
 * told not to restart it), and a broker restart can end one for good. It fails on a failure
 * that is not retryable, or once lives have kept failing for `giveUpAfter` without one joining
 * its group: the service then stops (Vital) for its supervisor instead of looking healthy while
 * it consumes nothing. Each restart counts `bus_consumer_restarted` (the consumer service is the
 * one that consumes).
 */
export const keepConsuming = <R>(
  life: (joined: () => void) => Effect.Effect<never, PortError, R>,
  restarts: ConsumeRestarts = defaultConsumeRestarts
): Effect.Effect<never, PortError, R> =>
  Effect.gen(function*() {
    const delayMs = Duration.toMillis(Duration.fromInputUnsafe(restarts.delay))
    const maxDelayMs = Duration.toMillis(Duration.fromInputUnsafe(restarts.maxDelay))
    const giveUpMs = Duration.toMillis(Duration.fromInputUnsafe(restarts.giveUpAfter))
    /** The first failure since a life last joined (undefined: none), and the failures since. */
    let failingSince: number | undefined
    let failures = 0
    const joined = () => {
      failingSince = undefined
      failures = 0
    }
    while (true) {
      // A life never ends but by failing: its failure, as a value (a defect still ends it all).
      const error = yield* Effect.flip(life(joined))
      const now = yield* Clock.currentTimeMillis
      failingSince ??= now
      failures++
      if (!error.retryable || now - failingSince > giveUpMs) return yield* error
      const wait = Math.min(maxDelayMs, delayMs * 2 ** (failures - 1))
      yield* Metrics.error("consumer", "bus_consumer_restarted")
      yield* Effect.logWarning(`the consumer stopped; a new one in ${wait} ms (failing for ${now - failingSince} ms)`, error)
      yield* Effect.sleep(Duration.millis(wait))
    }
  })

/** The error at the end of a kafkajs error's causes. */
const originalCause = (error: KafkaErrorLike): KafkaErrorLike => {
  let at = error
  while (typeof at.cause === "object" && at.cause !== null && at.cause !== at) at = at.cause as KafkaErrorLike
  return at
}

/**
 * Whether a crashed consumer is worth a new one: when kafkajs would have restarted it itself (its
 * retries ran out, or what they ran out on was retriable), and for a group with no coordinator yet.
 */
export const crashIsRetryable = (cause: unknown): boolean => {
  if (typeof cause !== "object" || cause === null) return false
  const error = cause as KafkaErrorLike
  return error.name === "KafkaJSNumberOfRetriesExceeded" || isRetryable(error) || isRetryable(originalCause(error))
}

const toPortError = (operation: string) => (cause: unknown) =>
  new PortError({ port: PORT, operation, retryable: isRetryable(cause), cause })

/** On top of kafkajs's own retries (5, exponential from 100 ms): a couple more, later. */
const adapterRetry = Schedule.exponential("250 millis", 2).pipe(Schedule.jittered)

const kafkaCall = <A>(operation: string, call: () => Promise<A>): Effect.Effect<A, PortError> =>
  Effect.tryPromise({ try: call, catch: toPortError(operation) }).pipe(
    Effect.retry({ schedule: adapterRetry, times: 2, while: (error) => error.retryable })
  )

/** Kafka record headers as strings (a repeated header keeps its first value). */
const headersOf = (message: KafkaMessage): Record<string, string> | undefined => {
  if (message.headers === undefined) return undefined
  let headers: Record<string, string> | undefined
  for (const [name, raw] of Object.entries(message.headers)) {
    const value = Array.isArray(raw) ? raw[0] : raw
    if (value === undefined) continue
    ;(headers ??= {})[name] = typeof value === "string" ? value : value.toString("utf8")
  }
  return headers
}

const toConsumedRecord = (topic: string, partition: number) => (message: KafkaMessage): ConsumedRecord => {
  const headers = headersOf(message)
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: message.key?.toString("utf8") ?? "",
    value: message.value?.toString("utf8") ?? "",
    ...(headers === undefined ? {} : { headers })
  }
}

/** A batch kafkajs waits on: `done` lets its eachBatch callback return. */
interface PendingBatch {
  readonly payload: EachBatchPayload
  readonly done: () => void
}

/**
 * MessageBus on Kafka. Publish: keyed records, acks from all in-sync replicas, idempotent
 * producer. Consume: a member of the consumer group, records handed to the handler in order per
 * partition, at most `maxBatch` at a time; the offset is committed only after the handler
 * succeeded, a failed or dying handler gets the same records again after a backoff, and an
 * interrupted consumer leaves the group without committing.
 */
export const make = (options: KafkaMessageBusOptions): Effect.Effect<MessageBus["Service"], PortError, Scope.Scope> =>
  Effect.gen(function*() {
    stopIdleRequestChecks()
    const connectTimeout = Duration.fromInputUnsafe(options.connectTimeout ?? "30 seconds")
    const heartbeatInterval = Duration.fromInputUnsafe(options.heartbeatInterval ?? "3 seconds")
    const services = yield* Effect.context<never>()

    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: 3_000,
      retry: { initialRetryTime: 100, retries: 5 },
      // kafkajs's logger is a callback: its warnings and errors become Effect warnings.
      logLevel: logLevel.WARN,
      logCreator: () => ({ namespace, level, log }) => {
        const { message, timestamp: _timestamp, logger: _logger, ...fields } = log
        Effect.runForkWith(services)(
          Effect.logWarning(`kafkajs: ${message}`, fields).pipe(
            Effect.annotateLogs({ service: "KafkaMessageBus", kafkajs: namespace, kafkajsLevel: levelNames[level] ?? level })
          )
        )
      }
    })

    /** Connects within the start-up bound, or fails naming the setting to check. */
    const connectAtStartup = (what: string, connect: () => Promise<void>) =>
      Effect.tryPromise({ try: connect, catch: toPortError(`connect ${what}`) }).pipe(
        Effect.retry({ schedule: Schedule.spaced("1 second"), while: (error) => error.retryable }),
        Effect.timeoutOrElse({
          duration: connectTimeout,
          orElse: () => Effect.fail(new Error(`no broker answered within ${Duration.format(connectTimeout)}`))
        }),
        Effect.mapError((cause) =>
          new PortError({
            port: PORT,
            operation: `connect ${what} (cannot reach Kafka at KAFKA_BROKERS=${options.brokers.join(",")})`,
            retryable: true,
            cause: cause instanceof PortError ? cause.cause : cause
          })
        )
      )

    const disconnect = (close: () => Promise<void>) =>
      Effect.tryPromise(close).pipe(Effect.timeout("10 seconds"), Effect.ignore)

    const admin: Admin = yield* Effect.acquireRelease(
      Effect.sync(() => kafka.admin()).pipe(Effect.tap((admin) => connectAtStartup("admin", () => admin.connect()))),
      (admin) => disconnect(() => admin.disconnect())
    )
    const producer = yield* Effect.acquireRelease(
      Effect.sync(() =>
        kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
          allowAutoTopicCreation: false
        })
      ).pipe(Effect.tap((producer) => connectAtStartup("producer", () => producer.connect()))),
      (producer) => disconnect(() => producer.disconnect())
    )

    const knownTopics = new Set<string>()
    /** Creates the topic if it is missing; creating one that exists is not an error. */
    const ensureTopic = (topic: string) =>
      knownTopics.has(topic) ? Effect.void : kafkaCall("createTopic", () =>
        admin.createTopics({
          waitForLeaders: true,
          topics: [{ topic, numPartitions: options.partitions, replicationFactor: options.replicationFactor ?? 1 }]
        }).catch((error: KafkaErrorLike) => {
          if (error.type === "TOPIC_ALREADY_EXISTS") return false
          throw error
        })).pipe(Effect.tap(() => Effect.sync(() => knownTopics.add(topic))))

    // Publishes that arrive while a produce request is in flight, or within the linger of the
    // first, go out together in the next one: the idempotent producer allows one request at a
    // time, so one record per request would bound the bus at one round trip per message. Order
    // is kept: the queue's, then each call's.
    interface PendingPublish {
      readonly topic: string
      readonly records: ReadonlyArray<BusRecord>
      readonly done: Deferred.Deferred<void, PortError>
    }
    const outbox = yield* Queue.unbounded<PendingPublish>()
    const sendPending = (batch: ReadonlyArray<PendingPublish>) =>
      Effect.gen(function*() {
        const byTopic = new Map<string, Array<{ key: string; value: string; headers?: Record<string, string> }>>()
        for (const { records, topic } of batch) {
          let messages = byTopic.get(topic)
          if (messages === undefined) byTopic.set(topic, messages = [])
          for (const record of records) {
            messages.push(
              record.headers === undefined
                ? { key: record.key, value: record.value }
                : { key: record.key, value: record.value, headers: { ...record.headers } }
            )
          }
        }
        yield* Effect.forEach(byTopic.keys(), ensureTopic, { discard: true })
        yield* kafkaCall("publish", () =>
          producer.sendBatch({
            acks: -1,
            topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages }))
          }))
      }).pipe(
        Effect.exit,
        Effect.flatMap((exit) => Effect.forEach(batch, ({ done }) => Deferred.done(done, exit), { discard: true }))
      )
    const lingerMillis = Duration.toMillis(Duration.fromInputUnsafe(options.produceLinger ?? 0))
    /** What else waits, up to `max` (takeBetween with a minimum of 0 would take nothing). */
    const waitingUpTo = (max: number) =>
      Effect.flatMap(Queue.size(outbox), (waiting) => waiting === 0 ? Effect.succeed([]) : Queue.takeBetween(outbox, 1, max))
    /**
     * The linger, counted from when `first` is taken, not from its arrival (as Kafka's
     * `linger.ms` is): under load, when `first` has waited out a request in flight, this still
     * waits, so requests go at most one per round trip and linger, and carry more. On this
     * machine that measured better than counting from the arrival (docs/benchmarks.md,
     * "Lingering sends"). Interrupted (the bus closing), its publisher is told so.
     */
    const lingerOf = (first: PendingPublish) =>
      Effect.sleep(Duration.millis(lingerMillis)).pipe(
        Effect.onInterrupt(() =>
          Deferred.fail(first.done, new PortError({ port: PORT, operation: "publish", retryable: true, cause: "the bus was closing" }))
        )
      )
    const nextRequest = lingerMillis <= 0
      ? Queue.takeBetween(outbox, 1, MAX_PUBLISHES_PER_REQUEST)
      : Queue.take(outbox).pipe(
        Effect.tap(lingerOf),
        Effect.flatMap((first) => Effect.map(waitingUpTo(MAX_PUBLISHES_PER_REQUEST - 1), (rest) => [first, ...rest]))
      )
    // Without it no publish would ever be answered: the service stops (Vital).
    yield* Vital.forkScoped("sending publishes to Kafka", nextRequest.pipe(Effect.flatMap(sendPending), Effect.forever))

    const publish = Effect.fnUntraced(function*(topic: string, records: ReadonlyArray<BusRecord>) {
      if (records.length === 0) return
      const done = yield* Deferred.make<void, PortError>()
      yield* Queue.offer(outbox, { topic, records, done })
      yield* Deferred.await(done)
    }, TraceContext.span("KafkaMessageBus.publish"))

    const consume = <E, R>(
      consumeOptions: ConsumeOptions,
      handler: (batch: ReadonlyArray<ConsumedRecord>) => Effect.Effect<void, E, R>
    ): Effect.Effect<never, PortError, R> =>
      keepConsuming((joined) => Effect.gen(function*() {
        const { group, maxBatch, topic } = consumeOptions
        yield* ensureTopic(topic)

        // Batches kafkajs is waiting on. On the way out every one is let go unresolved, so
        // that disconnect (which waits for eachBatch to return) can finish.
        const waiting = new Set<PendingBatch>()
        let closing = false
        const batches = yield* Queue.unbounded<PendingBatch>()
        const crashed = yield* Deferred.make<never, PortError>()

        // Released even when the connect fails: each restart makes a new one.
        const consumer = yield* Effect.acquireRelease(
          Effect.sync(() =>
            kafka.consumer({
              groupId: group,
              sessionTimeout: Duration.toMillis(Duration.fromInputUnsafe(options.sessionTimeout ?? "30 seconds")),
              heartbeatInterval: Duration.toMillis(heartbeatInterval),
              maxWaitTimeInMs: 500,
              allowAutoTopicCreation: false,
              retry: { retries: 5, restartOnFailure: () => Promise.resolve(false) }
            })
          ),
          (consumer) =>
            Effect.sync(() => {
              closing = true
              for (const pending of waiting) pending.done()
              waiting.clear()
            }).pipe(Effect.andThen(disconnect(() => consumer.disconnect())))
        )
        consumer.on(consumer.events.GROUP_JOIN, joined)
        yield* kafkaCall("consume.connect", () => consumer.connect())
        // Every crash ends this life (kafkajs restarts none: `restartOnFailure`); keepConsuming starts the next.
        consumer.on(consumer.events.CRASH, (event) => {
          const error = event.payload.error
          Deferred.doneUnsafe(crashed, Exit.fail(new PortError({ port: PORT, operation: "consume", retryable: crashIsRetryable(error), cause: error })))
        })
        yield* kafkaCall("consume.subscribe", () => consumer.subscribe({ topics: [topic], fromBeginning: true }))
        yield* kafkaCall("consume.run", () =>
          consumer.run({
            autoCommit: false,
            eachBatchAutoResolve: false,
            partitionsConsumedConcurrently: options.partitions,
            eachBatch: (payload) =>
              new Promise<void>((resolve) => {
                if (closing) return resolve()
                const pending: PendingBatch = {
                  payload,
                  done: () => {
                    waiting.delete(pending)
                    resolve()
                  }
                }
                waiting.add(pending)
                Queue.offerUnsafe(batches, pending)
              })
          }))

        /** The handler until it succeeds: failures and defects alike get the records again. */
        const handleUntilSuccess = (records: ReadonlyArray<ConsumedRecord>) =>
          handler(records).pipe(
            Effect.sandbox,
            Effect.tapError((cause) =>
              Effect.logWarning("batch failed; it will be handed over again", Cause.squash(cause)).pipe(
                Effect.annotateLogs({ topic, group, partition: records[0]!.partition, offset: records[0]!.offset })
              )
            ),
            Effect.retry(redeliverySchedule),
            Effect.orDie // unreachable: the schedule never ends
          )

        const processBatch = ({ done, payload }: PendingBatch) =>
          Effect.gen(function*() {
            const { batch } = payload
            // kafkajs heartbeats only when asked to; a long handler must not cost the partition.
            yield* Effect.tryPromise(() => payload.heartbeat()).pipe(
              Effect.ignore,
              Effect.repeat(Schedule.spaced(heartbeatInterval)),
              Effect.delay(heartbeatInterval),
              Effect.forkScoped
            )
            const records = batch.messages.map(toConsumedRecord(batch.topic, batch.partition))
            for (let i = 0; i < records.length; i += maxBatch) {
              // Revoked in a rebalance, or stopping: the rest goes to whoever has the partition.
              if (!payload.isRunning() || payload.isStale()) return
              const chunk = records.slice(i, i + maxBatch)
              yield* handleUntilSuccess(chunk)
              const last = chunk.at(-1)!
              const committed = yield* kafkaCall("consume.commit", () =>
                consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(last.offset + 1) }]))
                .pipe(
                  Effect.as(true),
                  // Lost the partition meanwhile: the records will be handed over again.
                  Effect.catch((error) =>
                    Effect.logWarning("commit failed; the batch will be handed over again", error).pipe(Effect.as(false))
                  )
                )
              if (!committed) return
              payload.resolveOffset(batch.messages[i + chunk.length - 1]!.offset)
            }
          }).pipe(Effect.scoped, Effect.ensuring(Effect.sync(done)))

        const worker = Queue.take(batches).pipe(Effect.flatMap(processBatch), Effect.forever)
        return yield* Effect.raceFirst(
          Effect.forEach(Array.from({ length: options.partitions }), () => worker, { concurrency: "unbounded" }).pipe(
            Effect.andThen(Effect.never)
          ),
          Deferred.await(crashed)
        )
      }).pipe(Effect.scoped)).pipe(
        Effect.annotateLogs({ service: "KafkaMessageBus", topic: consumeOptions.topic, group: consumeOptions.group }),
        Effect.withSpan("KafkaMessageBus.consume", {
          attributes: { topic: consumeOptions.topic, group: consumeOptions.group }
        })
      )

    const lag = Effect.fn("KafkaMessageBus.lag")(function*(topic: string, group: string) {
      yield* ensureTopic(topic)
      const [ends, committed] = yield* Effect.all([
        kafkaCall("lag", () => admin.fetchTopicOffsets(topic)),
        kafkaCall("lag", () => admin.fetchOffsets({ groupId: group, topics: [topic] }))
      ], { concurrency: 2 })
      const committedBy = new Map<number, number>()
      for (const { partition, offset } of committed.find((t) => t.topic === topic)?.partitions ?? []) {
        committedBy.set(partition, Number(offset))
      }
      let total = 0
      for (const { high, low, partition } of ends) {
        // A group that never committed starts at the oldest record still held.
        const from = Math.max(committedBy.get(partition) ?? -1, Number(low))
        total += Math.max(0, Number(high) - from)
      }
      return total
    })

    return MessageBus.of({ publish, consume, lag })
  }).pipe(Effect.annotateLogs({ service: "KafkaMessageBus" }))

/**
 * Config: KAFKA_BROKERS, KAFKA_CLIENT_ID, KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION_FACTOR,
 * KAFKA_CONNECT_TIMEOUT, KAFKA_SESSION_TIMEOUT (30 s), KAFKA_HEARTBEAT_INTERVAL (3 s),
 * KAFKA_PRODUCE_LINGER (5 ms).
 */
export const config = Config.all({
  brokers: Config.String("KAFKA_BROKERS").pipe(
    Config.withDefault("127.0.0.1:9092"),
    Config.map((list) => list.split(",").map((broker) => broker.trim()).filter((broker) => broker !== ""))
  ),
  clientId: Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault("im")),
  partitions: Settings.int("KAFKA_TOPIC_PARTITIONS", 8, { minimum: 1 }),
  replicationFactor: Settings.int("KAFKA_TOPIC_REPLICATION_FACTOR", 1, { minimum: 1 }),
  connectTimeout: Settings.positiveDuration("KAFKA_CONNECT_TIMEOUT", Duration.seconds(30)),
  sessionTimeout: Settings.positiveDuration("KAFKA_SESSION_TIMEOUT", Duration.seconds(30)),
  heartbeatInterval: Settings.positiveDuration("KAFKA_HEARTBEAT_INTERVAL", Duration.seconds(3)),
  produceLinger: Settings.durationOrZero("KAFKA_PRODUCE_LINGER", Duration.millis(5))
})

/** MessageBus on the Kafka cluster of KAFKA_BROKERS. */
export const layer: Layer.Layer<MessageBus, PortError | Config.ConfigError> = Layer.effect(
  MessageBus,
  Effect.gen(function*() {
    return yield* make(yield* config)
  })
)

/** The module as one value, for `import { KafkaMessageBus } from "@im/kafka/KafkaMessageBus"`. */
export const KafkaMessageBus = { make, config, layer } as const
