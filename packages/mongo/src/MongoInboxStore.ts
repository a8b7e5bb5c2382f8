import * as Settings from "@im/ports/Settings"
import type { ServerId, UserId } from "@im/domain/Ids"
import { entryKey, firstOfEachPair, type InboxRef, InboxStore, type RangeQuery, storedUnderOtherSeqs } from "@im/ports/InboxStore"
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
/**
 * Entries per ordered insert. FerretDB 1.24 runs an ordered insert in batches of 100 documents,
 * and after a batch that failed goes on with the next: in order only up to 100 at a time.
 */
const ORDERED_CHUNK = 100
/**
 * Ordered inserts of an append under way at once (each of other users). Cluster 1:1 at full
 * speed: 2,888/s with 2, 2,775/s with 8, whose extra FerretDB connections cost PostgreSQL more.
 */
const LANES = 2
/** How often, and how long apart, an append looks for the entries it left to another writer. */
const SETTLE_POLLS = 40
const SETTLE_INTERVAL = Duration.millis(50)

const toRef = (doc: InboxDocument): InboxRef => ({
  user_id: doc.user_id as UserId,
  seq: doc.seq,
  server_id: doc.server_id as ServerId
})

const projection = { _id: 0, user_id: 1, seq: 1, server_id: 1 } as const

const keyOf = (doc: InboxDocument): string => entryKey(doc.user_id as UserId, doc.server_id as ServerId)

const refused = (message: string) =>
  new PortError({ port: PORT, operation: "append", retryable: false, cause: new Error(message) })

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
 * An append is a few ordered inserts at once (lanes of other users, at most ORDERED_CHUNK
 * entries each), each user's entries in seq order: usually all are new. At a duplicate key it
 * looks up what of the lane's rest is stored and goes on with the others. A stored
 * (user_id, server_id) is a replay and counts as done; a different message under a taken number
 * fails the append with a non-retryable PortError, since that is a bug upstream (what was
 * inserted before it is kept).
 *
 * Two writers may append the same messages at once (two consumers handed one batch in a Kafka
 * rebalance), each with numbers of its own. Where one finds a message stored by the other under a
 * later number, it leaves that user's later entries of the call to the other and waits for them
 * (SETTLE_POLLS × SETTLE_INTERVAL, then a retryable PortError): had it stored them under its own,
 * earlier, numbers, they would come before that message in the inbox. The writer with the later
 * numbers goes on past what the other stored, so each user's entries of a batch are the first
 * writer's up to some message and the second's after it, in order. This holds when both hand the
 * user the same messages; two consumers that read a group's members on either side of a change
 * may not, and then the retry of what was left to the other may come last.
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
    const byMessage = new Map<string, Set<string>>()
    for (const { server_id, user_id } of keys) {
      let ids = byUser.get(user_id)
      if (ids === undefined) byUser.set(user_id, ids = new Set())
      ids.add(server_id)
      let users = byMessage.get(server_id)
      if (users === undefined) byMessage.set(server_id, users = new Set())
      users.add(user_id)
    }
    // One query per user, or per message when that is fewer (a group's messages, replayed: 30
    // messages to 500 members are 500 users but 30 messages), a few at a time. Either is an
    // equality on one field of the (user_id, server_id) index and an $in on the other, which
    // MongoDB serves from it; FerretDB 1.24 turns the equality into SQL (served by the GIN
    // indexes `infra:up` adds) and filters the $in itself, so a user's query reads all their
    // entries: 500 of them took longer than db's deadline. An $or of pairs it would scan for.
    const queries = byMessage.size < byUser.size
      ? [...byMessage].map(([server_id, users]) => ({ server_id, user_id: { $in: [...users] } }))
      : [...byUser].map(([user_id, ids]) => ({ user_id, server_id: { $in: [...ids] } }))
    return Effect.forEach(
      queries,
      (filter) => portCall("find", () => inbox.find(filter, { projection }).toArray()),
      { concurrency: 8 }
    ).pipe(Effect.map((found) => found.flat()))
  }

  /** One ordered insert: the number of documents stored before the first that failed, and why it failed. */
  const insertOrdered = (docs: ReadonlyArray<InboxDocument>) =>
    Effect.tryPromise({
      // insertMany adds `_id` to the documents it is given: hand it copies.
      try: () => inbox.insertMany(docs.map((doc) => ({ ...doc })), { ordered: true }).then(() => undefined),
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) => {
        const writeErrors: ReadonlyArray<WriteError> = cause instanceof MongoBulkWriteError ? [cause.writeErrors].flat() : []
        if (writeErrors.length === 1 && writeErrors[0]!.code === DUPLICATE_KEY) return Effect.succeed(writeErrors[0]!.index)
        return Effect.fail(new PortError({ port: PORT, operation: "append", retryable: isTransient(cause), cause }))
      }),
      Effect.retry({ schedule: transientRetry, times: 4, while: (error) => error.retryable })
    )

  /**
   * The entries in lanes that may be stored at once: each user's entries in one lane, in seq order
   * (their messages' order); whole users packed up to ORDERED_CHUNK entries a lane, a user with
   * more in a lane of its own.
   */
  const lanesOf = (docs: Iterable<InboxDocument>): ReadonlyArray<ReadonlyArray<InboxDocument>> => {
    const byUser = new Map<string, Array<InboxDocument>>()
    for (const doc of docs) {
      const own = byUser.get(doc.user_id)
      if (own === undefined) byUser.set(doc.user_id, [doc])
      else own.push(doc)
    }
    const lanes: Array<Array<InboxDocument>> = []
    let packed: Array<InboxDocument> = []
    for (const own of byUser.values()) {
      own.sort((a, b) => a.seq - b.seq)
      if (own.length > ORDERED_CHUNK) lanes.push(own)
      else {
        if (packed.length + own.length > ORDERED_CHUNK) {
          lanes.push(packed)
          packed = []
        }
        packed.push(...own)
      }
    }
    if (packed.length > 0) lanes.push(packed)
    return lanes
  }

  const append = Effect.fn("MongoInboxStore.append")(function*(entries: ReadonlyArray<InboxRef>) {
    const unique = firstOfEachPair(entries)
    // Entries this call did not store (stored before, or left to another writer), and what it found stored.
    const notStored = new Map<string, InboxDocument>()
    const stored = new Map<string, InboxRef>()
    const remember = (found: ReadonlyArray<InboxDocument>) => {
      for (const doc of found) stored.set(keyOf(doc), toRef(doc))
    }
    const leftToOthers = new Set<string>()
    /** Stores a lane's entries in order, ORDERED_CHUNK at a time. */
    const storeLane = Effect.fnUntraced(function*(lane: ReadonlyArray<InboxDocument>) {
      let pending = lane
      while (pending.length > 0) {
        const failedAt = yield* insertOrdered(pending.slice(0, ORDERED_CHUNK))
        if (failedAt === undefined) {
          pending = pending.slice(ORDERED_CHUNK)
          continue
        }
        // Usually never: what is stored of the rest, in one look.
        const rest = pending.slice(failedAt)
        remember(yield* findKeys(rest))
        const failed = rest[0]!
        if (!stored.has(keyOf(failed))) {
          return yield* refused(`number already taken by another message: ${failed.user_id}#${failed.seq} (${failed.server_id})`)
        }
        const next: Array<InboxDocument> = []
        for (const doc of rest) {
          const key = keyOf(doc)
          const before = stored.get(key)
          if (leftToOthers.has(doc.user_id) || before !== undefined) {
            notStored.set(key, doc)
            // Another writer (a consumer handed the same batch in a rebalance) stored this message
            // under a later number: it stores this user's later messages too, after it. Storing
            // them here, under earlier numbers, would put them before this one in the inbox.
            if (before !== undefined && before.seq > doc.seq) leftToOthers.add(doc.user_id)
          } else {
            next.push(doc)
          }
        }
        pending = next
      }
    })
    yield* Effect.forEach(lanesOf(unique.values()), storeLane, { concurrency: LANES, discard: true })
    if (notStored.size === 0) return []
    // What was left to another writer is stored by it a moment later: wait for it, a while.
    let missing = [...notStored].filter(([key]) => !stored.has(key))
    for (let waited = 0; missing.length > 0; waited++) {
      if (waited === SETTLE_POLLS) {
        return yield* new PortError({
          port: PORT,
          operation: "append",
          retryable: true,
          cause: new Error(`${missing.length} entries left to another writer are not stored yet, e.g. ${missing[0]![0]}`)
        })
      }
      yield* Effect.sleep(SETTLE_INTERVAL)
      remember(yield* findKeys(missing.map(([, doc]) => doc)))
      missing = missing.filter(([key]) => !stored.has(key))
    }
    // Those stored under another number are returned, as stored.
    return storedUnderOtherSeqs(unique, stored.values())
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
      connectTimeout: Settings.positiveDuration("MONGO_CONNECT_TIMEOUT", Duration.seconds(10))
    })
    return yield* make(options)
  }).pipe(Effect.withSpan("MongoInboxStore.start"), Effect.annotateLogs({ service: "MongoInboxStore" }))
)
