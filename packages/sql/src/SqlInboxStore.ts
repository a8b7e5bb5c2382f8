import type { ServerId, UserId } from "@im/domain/Ids"
import { entryKey, firstOfEachPair, type InboxRef, InboxStore, type RangeQuery, storedUnderOtherSeqs } from "@im/ports/InboxStore"
import { PortError } from "@im/ports/PortError"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { portCall, toNumber } from "./SqlErrors.ts"

const PORT = "InboxStore"
/**
 * How the ids of a run or of a message's users travel: joined into one text parameter each, split
 * again by the statement. User and server ids are made by the server and hold no newline.
 */
const SEPARATOR = "\n"
/** How many times an append looks again when another writer stored some of its messages meanwhile. */
const MAX_PASSES = 4

/** Stretches of one user's inbox stored together: seqs `first_seq`…`last_seq`, one entry each. */
interface Run {
  readonly user_id: UserId
  readonly first_seq: number
  last_seq: number
  readonly server_ids: Array<ServerId>
}

interface InboxRow {
  readonly user_id: string
  readonly seq: bigint | number | string
  readonly server_id: string
}

const toRef = (row: InboxRow): InboxRef => ({
  user_id: row.user_id as UserId,
  seq: toNumber(row.seq),
  server_id: row.server_id as ServerId
})

/** An id that survives being joined with SEPARATOR and split again. */
const joinable = (id: string): boolean => id.length > 0 && !id.includes(SEPARATOR)

const refused = (operation: string, message: string) =>
  new PortError({ port: PORT, operation, retryable: false, cause: new Error(message) })

const listed = (refs: ReadonlyArray<Pick<InboxRef, "user_id" | "seq">>) =>
  `${refs.slice(0, 5).map((ref) => `${ref.user_id}#${ref.seq}`).join(", ")}${refs.length > 5 ? ` and ${refs.length - 5} more` : ""}`

/**
 * The runs of `entries` (unique by (user, server_id)): per user in seq order, each a stretch of
 * consecutive seqs. A seq given to two messages of one user is refused.
 */
const runsOf = (entries: Iterable<InboxRef>): ReadonlyArray<Run> | PortError => {
  const byUser = new Map<UserId, Array<InboxRef>>()
  for (const entry of entries) {
    const own = byUser.get(entry.user_id)
    if (own === undefined) byUser.set(entry.user_id, [entry])
    else own.push(entry)
  }
  const runs: Array<Run> = []
  for (const [user_id, own] of byUser) {
    own.sort((a, b) => a.seq - b.seq)
    let run: Run | undefined
    for (const { seq, server_id } of own) {
      if (run !== undefined && seq === run.last_seq) {
        return refused("append", `seq ${user_id}#${seq} given to two messages`)
      }
      if (run !== undefined && seq === run.last_seq + 1) {
        run.last_seq = seq
        run.server_ids.push(server_id)
      } else {
        run = { user_id, first_seq: seq, last_seq: seq, server_ids: [server_id] }
        runs.push(run)
      }
    }
  }
  return runs
}

/** Per message, the users it is stored for now and their seqs, as two joined parameters. */
const fanoutOf = (entries: Iterable<InboxRef>) => {
  const byMessage = new Map<ServerId, { users: Array<string>; seqs: Array<number> }>()
  for (const { seq, server_id, user_id } of entries) {
    const fanout = byMessage.get(server_id)
    if (fanout === undefined) byMessage.set(server_id, { users: [user_id], seqs: [seq] })
    else {
      fanout.users.push(user_id)
      fanout.seqs.push(seq)
    }
  }
  return {
    messages: [...byMessage.keys()],
    users: [...byMessage.values()].map(({ users }) => users.join(SEPARATOR)),
    seqs: [...byMessage.values()].map(({ seqs }) => seqs.join(","))
  }
}

/** Every stored (user, seq) pair of these messages, whatever the user. */
const storedPairs = (sql: SqlClient.SqlClient, messages: ReadonlyArray<ServerId>) =>
  sql<InboxRow>`
    SELECT u.user_id, u.seq, f.server_id
    FROM inbox_fanout f CROSS JOIN LATERAL unnest(f.user_ids, f.seqs) AS u(user_id, seq)
    WHERE f.server_id = ANY(${messages}::text[])`

/**
 * An append's common table expressions: `known` (the stored pairs of `messages`), `clashes` (the
 * stored runs `runs` would overlap), `go` (true when `known` holds `expectedKnown` pairs and
 * nothing clashes), and the inserts of `entries` as `runs` (runsOf them) and fanout rows, done
 * only if `go`. The statement that holds them says what it returns.
 */
export const appendSteps = (
  sql: SqlClient.SqlClient,
  messages: ReadonlyArray<ServerId>,
  entries: ReadonlyArray<InboxRef>,
  expectedKnown: number,
  runs: ReadonlyArray<Run>
) => {
  const fanout = fanoutOf(entries)
  return sql`
    known AS (${storedPairs(sql, messages)}),
    runs AS (
      SELECT * FROM unnest(
        ${runs.map((run) => run.user_id)}::text[], ${runs.map((run) => BigInt(run.first_seq))}::int8[],
        ${runs.map((run) => BigInt(run.last_seq))}::int8[], ${runs.map((run) => run.server_ids.join(SEPARATOR))}::text[]
      ) AS r(user_id, first_seq, last_seq, server_ids)
    ),
    clashes AS (
      SELECT r.user_id, greatest(r.first_seq, nearest.first_seq) AS taken FROM runs r CROSS JOIN LATERAL (
        SELECT i.first_seq FROM inbox_runs i
        WHERE i.user_id = r.user_id AND i.last_seq >= r.first_seq
        ORDER BY i.last_seq LIMIT 1
      ) AS nearest
      WHERE nearest.first_seq <= r.last_seq
    ),
    go AS (
      SELECT (SELECT count(*) FROM known) = ${expectedKnown} AND NOT EXISTS (SELECT 1 FROM clashes) AS go
    ),
    stored_runs AS (
      INSERT INTO inbox_runs (user_id, first_seq, last_seq, server_ids)
      SELECT user_id, first_seq, last_seq, string_to_array(server_ids, chr(10)) FROM runs
      WHERE (SELECT go FROM go)
    ),
    stored_fanout AS (
      INSERT INTO inbox_fanout (server_id, user_ids, seqs)
      SELECT server_id, string_to_array(user_ids, chr(10)), string_to_array(seqs, ',')::int8[]
      FROM unnest(${fanout.messages}::text[], ${fanout.users}::text[], ${fanout.seqs}::text[]) AS f(server_id, user_ids, seqs)
      WHERE (SELECT go FROM go)
    )`
}

/** The first of `entries` whose ids cannot be joined (see SEPARATOR), if any. */
const unjoinableOf = (entries: ReadonlyArray<InboxRef>) =>
  entries.find((entry) => !joinable(entry.user_id) || !joinable(entry.server_id))

/** An append's entries as it stores them: unique by (user, server_id), their messages, and their runs (or why not). */
const prepare = (entries: ReadonlyArray<InboxRef>) => {
  const unique = firstOfEachPair(entries)
  const given = [...unique.values()]
  return { unique, given, messages: [...new Set(given.map((entry) => entry.server_id))], runs: runsOf(given) }
}

/**
 * What an append of `entries` stores when nothing of their messages is stored yet, the usual
 * case, in one pass: the entries (unique by (user, server_id)), their messages and their runs; or
 * undefined when the ids or the numbers need `append`'s checks and passes.
 */
export const firstPass = (entries: ReadonlyArray<InboxRef>) => {
  if (unjoinableOf(entries) !== undefined) return undefined
  const { given, messages, runs } = prepare(entries)
  return given.length === 0 || runs instanceof PortError ? undefined : { given, messages, runs }
}

/**
 * Inboxes as runs (migration 0013). `inbox_runs` holds a row per user and stretch of consecutive
 * seqs appended together, keyed by (user_id, last_seq); `inbox_fanout` a row per message and
 * append with the users it was stored for and their seqs. A step of 20 messages to a group of
 * 500 is 500 runs and 20 fanout rows instead of 10,000 rows with two indexes each: in PGlite
 * about 2 µs per entry instead of 20, flat as the inboxes grow.
 *
 * An append is one statement. It looks up the fanout rows of its messages and the stored run
 * nearest each new one, and inserts only when neither is there: usually. A message stored
 * before (a replay, another consumer) makes it leave those pairs out and try again, expecting
 * the pairs it saw; a run overlapping a stored one (a different message under a taken number, a
 * bug upstream) fails the append with a non-retryable PortError and stores nothing.
 *
 * The checks hold for one writer at a time, which is what standalone has (PGlite is a single
 * backend; the cluster's inbox is MongoDB). On a PostgreSQL shared by concurrent writers they are
 * weaker than a per-entry unique index: two appends of one message at once collide on
 * `inbox_fanout_message` only when their users come in the same order, and two overlapping runs
 * that end on different seqs are both kept.
 */
export const layer: Layer.Layer<InboxStore, never, SqlClient.SqlClient> = Layer.effect(
  InboxStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    /**
     * Stores `entries` (as `runs`, runsOf them) unless their messages' stored pairs are not
     * `expectedKnown` in number or one of their runs overlaps a stored one; returns those pairs
     * (of every user) and the clashes.
     */
    const store = (
      messages: ReadonlyArray<ServerId>,
      entries: ReadonlyArray<InboxRef>,
      expectedKnown: number,
      runs: ReadonlyArray<Run> | PortError
    ) => {
      if (runs instanceof PortError) return Effect.fail(runs)
      return sql<{ readonly clash: boolean } & InboxRow>`
        WITH ${appendSteps(sql, messages, entries, expectedKnown, runs)}
        SELECT false AS clash, server_id, user_id, seq FROM known
        UNION ALL
        SELECT true, NULL, user_id, taken FROM clashes`.pipe(
        portCall(PORT, "append"),
        Effect.map((rows) => ({
          known: rows.filter((row) => !row.clash).map(toRef),
          clashes: rows.filter((row) => row.clash).map(toRef)
        }))
      )
    }

    const append = Effect.fn("SqlInboxStore.append")(function*(entries: ReadonlyArray<InboxRef>) {
      const unjoinable = unjoinableOf(entries)
      if (unjoinable !== undefined) {
        return yield* refused("append", `an id is empty or holds a newline: ${JSON.stringify(unjoinable)}`)
      }
      const { given, messages, runs: givenRuns, unique } = prepare(entries)
      if (given.length === 0) return []
      /** The given entries whose pair is not among `stored`. */
      const withoutStored = (stored: ReadonlyArray<InboxRef>) => {
        const keys = new Set(stored.map((ref) => entryKey(ref.user_id, ref.server_id)))
        return given.filter((entry) => !keys.has(entryKey(entry.user_id, entry.server_id)))
      }
      // Usually nothing of these messages is stored yet: one pass.
      let fresh: ReadonlyArray<InboxRef> = given
      let expectedKnown = 0
      if (givenRuns instanceof PortError) {
        // Two of them under one number: allowed when all but one were stored before (replays under
        // other numbers), which only the stored pairs tell.
        const known = (yield* storedPairs(sql, messages).pipe(portCall(PORT, "append"))).map(toRef)
        fresh = withoutStored(known)
        expectedKnown = known.length
      }
      for (let pass = 1;; pass++) {
        const { clashes, known } = yield* store(messages, fresh, expectedKnown, fresh === given ? givenRuns : runsOf(fresh))
        // Those stored before under another number are returned, as stored.
        const earlier = storedUnderOtherSeqs(unique, known)
        // Pairs are never removed: the same count is the same pairs, so `fresh` was right.
        if (known.length === expectedKnown) {
          if (clashes.length > 0) {
            return yield* refused("append", `numbers already taken by other messages: ${listed(clashes)}`)
          }
          return earlier
        }
        fresh = withoutStored(known)
        if (fresh.length === 0) return earlier
        if (pass === MAX_PASSES) {
          return yield* new PortError({
            port: PORT,
            operation: "append",
            retryable: true,
            cause: new Error(`the messages kept being stored by another writer (${pass} passes)`)
          })
        }
        expectedKnown = known.length
      }
    })

    const find = Effect.fn("SqlInboxStore.find")(function*(keys: ReadonlyArray<Pick<InboxRef, "user_id" | "server_id">>) {
      if (keys.length === 0) return []
      const wanted = new Set(keys.map((key) => entryKey(key.user_id, key.server_id)))
      const rows = yield* storedPairs(sql, [...new Set(keys.map((key) => key.server_id))]).pipe(portCall(PORT, "find"))
      return rows.filter((row) => wanted.has(entryKey(row.user_id as UserId, row.server_id as ServerId))).map(toRef)
    })

    const range = Effect.fn("SqlInboxStore.range")(function*({ after, limit, until, user }: RangeQuery) {
      const rows = yield* sql<InboxRow>`
        SELECT r.user_id, r.first_seq + e.i - 1 AS seq, e.server_id
        FROM inbox_runs r CROSS JOIN LATERAL unnest(r.server_ids) WITH ORDINALITY AS e(server_id, i)
        WHERE ${
        sql.and([
          sql`r.user_id = ${user}`,
          sql`r.last_seq > ${after}`,
          sql`r.first_seq + e.i - 1 > ${after}`,
          ...(until === undefined ? [] : [sql`r.first_seq <= ${until}`, sql`r.first_seq + e.i - 1 <= ${until}`])
        ])
      }
        ORDER BY r.last_seq, e.i
        LIMIT ${limit}`.pipe(portCall(PORT, "range"))
      return rows.map(toRef)
    })

    const newest = Effect.fn("SqlInboxStore.newest")(function*(user: UserId) {
      const rows = yield* sql<{ readonly newest: bigint | null }>`
        SELECT max(last_seq) AS newest FROM inbox_runs WHERE user_id = ${user}`.pipe(portCall(PORT, "newest"))
      return toNumber(rows[0]?.newest)
    })

    return InboxStore.of({ append, find, range, newest })
  })
)
