import type { ServerId, UserId } from "@im/domain/Ids"
import { type InboxRef, InboxStore, type RangeQuery } from "@im/ports/InboxStore"
import { PortError } from "@im/ports/PortError"
import { Config, Duration, Effect, Layer, Redacted, Schedule } from "effect"
import {
  type Collection,
  MongoBulkWriteError,
  MongoClient,
  MongoError,
  MongoNetworkError,
  MongoServerSelectionError,
  type WriteError
} from "mongodb"

/** A document of the inbox collection; `_id` is the server's and never read. */
interface InboxDocument {
  readonly user_id: string
  readonly seq: number
  readonly server_id: string
}

const PORT = "InboxStore"
const COLLECTION = "inbox"
const DUPLICATE_KEY = 11000
/** Keys per `find` query: one query for any realistic batch, far below the 16 MiB command limit. */
const FIND_CHUNK = 20_000

const toRef = (doc: InboxDocument): InboxRef => ({
  user_id: doc.user_id as UserId,
  seq: doc.seq,
  server_id: doc.server_id as ServerId
})

const projection = { _id: 0, user_id: 1, seq: 1, server_id: 1 } as const

/** Lost connections, elections and server selection time-outs pass; the rest is a bug or a config. */
const isTransient = (error: unknown): boolean =>
  error instanceof MongoNetworkError ||
  error instanceof MongoServerSelectionError ||
  (error instanceof MongoError &&
    (error.hasErrorLabel("RetryableWriteError") || error.hasErrorLabel("TransientTransactionError")))

const transientRetry = Schedule.exponential("50 millis", 2).pipe(Schedule.jittered)

/** Runs a driver call as a port operation: errors become PortError, transient ones are retried. */
const portCall = <A>(operation: string, run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new PortError({ port: PORT, operation, retryable: isTransient(cause), cause })
  }).pipe(Effect.retry({ schedule: transientRetry, times: 4, while: (error) => error.retryable }))

/** The URL without its password, for messages. */
const printable = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "(unparsable MONGO_URL)"
  }
}

export interface MongoInboxStoreOptions {
  /** May hold credentials. */
  readonly url: Redacted.Redacted<string>
  readonly database: string
  /** How long start-up waits for a reachable server before failing. */
  readonly connectTimeout: Duration.Duration
}

/**
 * Inboxes in a MongoDB collection (FerretDB works too) with two unique indexes, made at start:
 * (user_id, seq) keeps one message per number, (user_id, server_id) makes appends idempotent.
 * An append is one unordered insert: a duplicate-key error from a stored (user_id, server_id)
 * is a replay and counts as done; a different message under a taken number fails the append
 * with a non-retryable PortError, since that is a bug upstream (the rest of the batch is kept).
 */
export const make = Effect.fnUntraced(function*(options: MongoInboxStoreOptions) {
  const timeoutMS = Duration.toMillis(options.connectTimeout)
  const client = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () =>
        new MongoClient(Redacted.value(options.url), {
          serverSelectionTimeoutMS: timeoutMS,
          connectTimeoutMS: timeoutMS,
          appName: "im"
        }).connect(),
      catch: (cause) =>
        new PortError({
          port: PORT,
          operation: "connect",
          retryable: isTransient(cause),
          cause: new Error(
            `cannot reach MongoDB at ${printable(Redacted.value(options.url))} within ${Duration.format(options.connectTimeout)}: ${
              cause instanceof Error ? cause.message : String(cause)
            }`,
            { cause }
          )
        })
    }),
    (client) => Effect.promise(() => client.close())
  )
  const inbox: Collection<InboxDocument> = client.db(options.database).collection<InboxDocument>(COLLECTION)
  // Only the missing indexes are created: FerretDB 1.24 (SQLite) fails createIndexes on a
  // collection that already has them, i.e. on every start after the first.
  const wanted = [
    { key: { user_id: 1, seq: 1 }, name: "user_seq", unique: true },
    { key: { user_id: 1, server_id: 1 }, name: "user_server_id", unique: true }
  ]
  const existing = yield* portCall("listIndexes", () =>
    inbox.listIndexes().toArray().catch((error: { codeName?: string }) => {
      if (error.codeName === "NamespaceNotFound") return []
      throw error
    }))
  const missing = wanted.filter((index) => !existing.some((found) => found["name"] === index.name))
  if (missing.length > 0) yield* portCall("createIndexes", () => inbox.createIndexes(missing))

  const findKeys = (keys: ReadonlyArray<Pick<InboxDocument, "user_id" | "server_id">>) => {
    const byUser = new Map<string, Set<string>>()
    for (const { server_id, user_id } of keys) {
      let ids = byUser.get(user_id)
      if (ids === undefined) byUser.set(user_id, ids = new Set())
      ids.add(server_id)
    }
    // One query per user, a few at a time: FerretDB uses the (user_id, …) index for a user_id
    // equality but scans the collection for an $or of them.
    return Effect.forEach(
      [...byUser],
      ([user_id, ids]) => portCall("find", () => inbox.find({ user_id, server_id: { $in: [...ids] } }, { projection }).toArray()),
      { concurrency: 8 }
    ).pipe(Effect.map((found) => found.flat()))
  }

  const append = Effect.fn("MongoInboxStore.append")(function*(entries: ReadonlyArray<InboxRef>) {
    // The first of several entries with one (user, server_id) wins, as a replay of it would.
    const unique = new Map<string, InboxDocument>()
    for (const { seq, server_id, user_id } of entries) {
      const key = JSON.stringify([user_id, server_id])
      if (!unique.has(key)) unique.set(key, { user_id, seq, server_id })
    }
    const docs = [...unique.values()]
    if (docs.length === 0) return []
    const duplicates = yield* Effect.tryPromise({
      // insertMany adds `_id` to the documents it is given: hand it copies.
      try: () => inbox.insertMany(docs.map((doc) => ({ ...doc })), { ordered: false }).then(() => []),
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) => {
        const writeErrors: ReadonlyArray<WriteError> = cause instanceof MongoBulkWriteError
          ? [cause.writeErrors].flat()
          : []
        if (writeErrors.length > 0 && writeErrors.every((e) => e.code === DUPLICATE_KEY)) {
          return Effect.succeed(writeErrors.map((e) => docs[e.index]!))
        }
        return Effect.fail(new PortError({ port: PORT, operation: "append", retryable: isTransient(cause), cause }))
      }),
      Effect.retry({ schedule: transientRetry, times: 4, while: (error) => error.retryable })
    )
    if (duplicates.length === 0) return []
    // The pairs stored before (by another consumer, a replay, or a first attempt of this call
    // that failed after storing them): those under another number are returned, as stored.
    const before = new Map((yield* findKeys(duplicates)).map((doc) => [JSON.stringify([doc.user_id, doc.server_id]), toRef(doc)]))
    const conflicts = duplicates.filter((doc) => !before.has(JSON.stringify([doc.user_id, doc.server_id])))
    if (conflicts.length > 0) {
      return yield* new PortError({
        port: PORT,
        operation: "append",
        retryable: false,
        cause: new Error(
          `numbers already taken by other messages: ${
            conflicts.slice(0, 5).map((doc) => `${doc.user_id}#${doc.seq} (${doc.server_id})`).join(", ")
          }${conflicts.length > 5 ? ` and ${conflicts.length - 5} more` : ""}`
        )
      })
    }
    return [...before].flatMap(([key, ref]) => (ref.seq === unique.get(key)!.seq ? [] : [ref]))
  })

  const find = Effect.fn("MongoInboxStore.find")(function*(keys: ReadonlyArray<Pick<InboxRef, "user_id" | "server_id">>) {
    const found: Array<InboxRef> = []
    for (let i = 0; i < keys.length; i += FIND_CHUNK) {
      for (const doc of yield* findKeys(keys.slice(i, i + FIND_CHUNK))) found.push(toRef(doc))
    }
    return found
  })

  const range = Effect.fn("MongoInboxStore.range")(function*({ after, limit, until, user }: RangeQuery) {
    // A Mongo limit of 0 means "no limit".
    if (limit <= 0) return []
    const seq = until === undefined ? { $gt: after } : { $gt: after, $lte: until }
    const docs = yield* portCall("range", () =>
      inbox.find({ user_id: user, seq }, { projection }).sort({ seq: 1 }).limit(limit).toArray())
    return docs.map(toRef)
  })

  const newest = Effect.fn("MongoInboxStore.newest")(function*(user: UserId) {
    const doc = yield* portCall("newest", () =>
      inbox.findOne({ user_id: user }, { projection, sort: { seq: -1 } }))
    return doc?.seq ?? 0
  })

  return InboxStore.of({ append, find, range, newest })
})

/**
 * `MONGO_URL` (default `mongodb://127.0.0.1:27017`), `MONGO_DB` (default `im`) and
 * `MONGO_CONNECT_TIMEOUT` (default 10 seconds): start-up fails with a PortError naming the
 * server when none answers within that time.
 */
export const layer: Layer.Layer<InboxStore, PortError | Config.ConfigError> = Layer.effect(
  InboxStore,
  Effect.gen(function*() {
    const options = yield* Config.all({
      url: Config.Redacted("MONGO_URL").pipe(Config.withDefault(Redacted.make("mongodb://127.0.0.1:27017"))),
      database: Config.String("MONGO_DB").pipe(Config.withDefault("im")),
      connectTimeout: Config.Duration("MONGO_CONNECT_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10)))
    })
    return yield* make(options)
  }).pipe(Effect.withSpan("MongoInboxStore.start"), Effect.annotateLogs({ service: "MongoInboxStore" }))
)
