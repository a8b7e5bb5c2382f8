import type { ServerId, UserId } from "@im/domain/Ids"
import {
  applyRead,
  type ConversationEntry,
  type ConversationState,
  ConversationStore,
  groupEntries,
  normalizeRuns,
  type SeqRuns,
  summarizeEntries,
  toConversation
} from "@im/ports/ConversationStore"
import { Effect, Layer, Option } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { portCall, toNumber } from "./SqlErrors.ts"

interface Row {
  readonly user_id: string
  readonly conversation: string
  readonly last_seq: bigint
  readonly last_server_id: string
  readonly read_seq: bigint
  readonly unread_seqs: string
  readonly unread_tail: string
}

/**
 * `unread_seqs` is a JSON array of unread seqs and runs: `[4,[6,90],93]`, and `unread_tail` one
 * more, of the runs appended since the row was last rewritten (migration 0015); a row's unread
 * seqs are both together. Rows written before runs hold single seqs only; appends may leave
 * either unordered or overlapping (normalizeRuns).
 */
const encodeRuns = (runs: SeqRuns): string => JSON.stringify(runs.map(([first, last]) => first === last ? first : [first, last]))

const toState = (row: Row): ConversationState => {
  const read_seq = toNumber(row.read_seq)
  return {
    last_seq: toNumber(row.last_seq),
    last_server_id: row.last_server_id as ServerId,
    read_seq,
    unread: normalizeRuns(
      [...JSON.parse(row.unread_seqs), ...JSON.parse(row.unread_tail)] as ReadonlyArray<number | readonly [number, number]>,
      read_seq
    )
  }
}

/**
 * A batch's unread runs are appended to `unread_seqs` while it is at most this many characters,
 * and to `unread_tail` after: an upsert copies the texts it changes, and a long `unread_seqs`
 * (stored out of line) is left as it is. A conversation its user does not read used to copy its
 * whole growing text at every batch (at 610 unread, a batch's record took twice as long as at 76).
 */
const APPEND_TO_HEAD_UP_TO = 1_000

/**
 * A row whose `unread_tail` grew past this many characters is rewritten normalized, the tail
 * folded into `unread_seqs` (at most MAX_TRACKED_RUNS runs, about 6–14 KB), under a lock.
 * Every append copies the tail, and a row nearing 2 KB is where PostgreSQL starts moving values
 * out of line: with 2,000, a standalone step of 112 messages among 200 users that read nothing
 * cost PGlite 7.5 ms after a fold and 12 ms before the next (9.3 on average); with 800, 7.4–9.7 ms
 * throughout (8.3). Steps of 2,000 messages cost the same with either, 52–57 ms
 * (docs/benchmarks.md, "The conversations' fold at 800 characters"); 500 made them 5–9 % dearer.
 */
const FOLD_ABOVE = 800

/** How long the unread texts may grow (APPEND_TO_HEAD_UP_TO, FOLD_ABOVE); tests shorten them. */
export interface TextLimits {
  readonly appendToHeadUpTo: number
  readonly foldAbove: number
}

export const DEFAULT_LIMITS: TextLimits = { appendToHeadUpTo: APPEND_TO_HEAD_UP_TO, foldAbove: FOLD_ABOVE }

/** A conversation row as a batch's entries make it (summarizeEntries), one per (user, conversation). */
const rowsOf = (entries: ReadonlyArray<ConversationEntry>) =>
  groupEntries(entries).map((group) => {
    const { last, ownSeq, unreadAfterOwn } = summarizeEntries(group.entries)
    return {
      user_id: group.user_id,
      conversation: group.conversation,
      last_seq: last.seq,
      last_server_id: last.server_id,
      // As a new row: read up to the own entry, if any. As an update, see summarizeEntries.
      read_seq: ownSeq,
      unread_seqs: encodeRuns(unreadAfterOwn)
    }
  })

/**
 * The upsert of the conversation rows `entries` make, read from `unnest` (one parameter per
 * column whatever their number), done if `where`; it never reads the rows first: the database
 * applies each summary to the row it has, appending the new unread runs to the text, or to its
 * tail once the text is long. Returns the rows written, and whether their tail `grown` past
 * `foldAbove` (`compact` them).
 */
export const recordEntries = (
  sql: SqlClient.SqlClient,
  { appendToHeadUpTo, foldAbove }: TextLimits,
  entries: ReadonlyArray<ConversationEntry>,
  where: Statement.Fragment = sql`true`
) => {
  const rows = rowsOf(entries)
  const column = <A>(f: (row: typeof rows[number]) => A) => rows.map(f)
  /** The batch has an own entry newer than the row: what it holds is read, the rest replaces the row's. */
  const readsAll = sql`EXCLUDED.read_seq > conversations.last_seq`
  /** The row's text is short and has no tail: the batch's runs go to the text. */
  const toText = sql`conversations.unread_tail = '[]' AND length(conversations.unread_seqs) <= ${appendToHeadUpTo}`
  return sql<{ readonly user_id: string; readonly conversation: string; readonly grown: boolean }>`
    INSERT INTO conversations (user_id, conversation, last_seq, last_server_id, read_seq, unread_seqs)
    SELECT * FROM unnest(
      ${column((row) => row.user_id)}::text[], ${column((row) => row.conversation)}::text[],
      ${column((row) => BigInt(row.last_seq))}::int8[], ${column((row) => row.last_server_id)}::text[],
      ${column((row) => BigInt(row.read_seq))}::int8[], ${column((row) => row.unread_seqs)}::text[]
    )
    WHERE ${where}
    ON CONFLICT (user_id, conversation) DO UPDATE SET
      last_seq = EXCLUDED.last_seq,
      last_server_id = EXCLUDED.last_server_id,
      read_seq = CASE WHEN ${readsAll} THEN EXCLUDED.read_seq ELSE conversations.read_seq END,
      -- Migration 0014: appended, or the text's last run extended.
      unread_seqs = CASE
        WHEN ${readsAll} THEN EXCLUDED.unread_seqs
        WHEN ${toText} THEN unread_append(conversations.unread_seqs, conversations.last_seq, EXCLUDED.unread_seqs)
        ELSE conversations.unread_seqs END,
      unread_tail = CASE
        WHEN ${readsAll} OR ${toText} THEN '[]'
        ELSE unread_append(conversations.unread_tail, conversations.last_seq, EXCLUDED.unread_seqs) END
    WHERE EXCLUDED.last_seq > conversations.last_seq
    RETURNING user_id, conversation, length(unread_tail) > ${foldAbove} AS grown`
}

/**
 * Rewrites the rows of these (user, conversation) keys normalized, the tail folded into the
 * text, under a lock: one read and one write whatever their number.
 */
export const compact = (sql: SqlClient.SqlClient, keys: ReadonlyArray<{ readonly user_id: string; readonly conversation: string }>) =>
  keys.length === 0 ? Effect.void : Effect.gen(function*() {
    const rows = yield* sql<Row>`
      SELECT * FROM conversations
      WHERE (user_id, conversation) IN (
        SELECT * FROM unnest(${keys.map((key) => key.user_id)}::text[], ${keys.map((key) => key.conversation)}::text[])
      )
      FOR UPDATE`
    if (rows.length === 0) return
    yield* sql`
      UPDATE conversations c SET unread_seqs = f.unread_seqs, unread_tail = '[]'
      FROM unnest(
        ${rows.map((row) => row.user_id)}::text[], ${rows.map((row) => row.conversation)}::text[],
        ${rows.map((row) => encodeRuns(toState(row).unread))}::text[]
      ) AS f(user_id, conversation, unread_seqs)
      WHERE c.user_id = f.user_id AND c.conversation = f.conversation`
  }).pipe(sql.withTransaction)

/**
 * Conversations in `conversations`, one row per (user, conversation) with the unread seqs as
 * JSON text (encodeRuns). Recording a batch is one upsert (`recordEntries`); replays and runs
 * appended out of shape are sorted out by `normalizeRuns` when the row is read. A row whose tail
 * grew past `foldAbove` characters is then rewritten normalized, under a lock (`compact`).
 * `markRead` reads the row under a lock, applies the shared rule of ConversationStore.ts and
 * writes it back, in one transaction.
 */
export const layerWith = (limits: TextLimits): Layer.Layer<ConversationStore, never, SqlClient.SqlClient> =>
  Layer.effect(
    ConversationStore,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const record = Effect.fn("SqlConversationStore.record")(function*(entries: ReadonlyArray<ConversationEntry>) {
        if (entries.length === 0) return
        const written = yield* recordEntries(sql, limits, entries).pipe(portCall("ConversationStore", "record"))
        yield* compact(sql, written.filter((row) => row.grown)).pipe(portCall("ConversationStore", "record"))
      })

      const list = Effect.fn("SqlConversationStore.list")(function*(user: UserId) {
        const rows = yield* sql<Row>`SELECT * FROM conversations WHERE user_id = ${user} ORDER BY last_seq DESC`.pipe(
          portCall("ConversationStore", "list")
        )
        return rows.map((row) => toConversation(row.conversation, toState(row)))
      })

      const markRead = Effect.fn("SqlConversationStore.markRead")(function*(user: UserId, conversation: string, seq: number) {
        return yield* Effect.gen(function*() {
          const rows = yield* sql<Row>`
            SELECT * FROM conversations WHERE user_id = ${user} AND conversation = ${conversation} FOR UPDATE`
          if (rows.length === 0) return Option.none()
          const before = toState(rows[0]!)
          const after = applyRead(before, seq)
          yield* sql`
            UPDATE conversations SET read_seq = ${after.read_seq}, unread_seqs = ${encodeRuns(after.unread)}, unread_tail = '[]'
            WHERE user_id = ${user} AND conversation = ${conversation}`
          return Option.some({ before: toConversation(conversation, before), after: toConversation(conversation, after) })
        }).pipe(sql.withTransaction, portCall("ConversationStore", "markRead"))
      })

      return ConversationStore.of({ record, list, markRead })
    })
  )

/** The store with the texts' lengths above; tests shorten them to reach the tail and the fold. */
export const layer: Layer.Layer<ConversationStore, never, SqlClient.SqlClient> = layerWith(DEFAULT_LIMITS)
