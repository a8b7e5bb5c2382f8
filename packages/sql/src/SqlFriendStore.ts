import type {
  Contact,
  ContactChanges,
  ContactState,
  FriendRequest,
  FriendRequestId,
  FriendRequestStatus
} from "@im/domain/Friend"
import type { UserId } from "@im/domain/Ids"
import { type AnswerOutcome, type BlockOutcome, type BlockPair, FriendStore, type NewFriendRequest, type RequestOutcome } from "@im/ports/FriendStore"
import { Array as Arr, Effect, Layer } from "effect"
import { SqlClient, type SqlError } from "effect/sql"
import { portCall, toNumber } from "./SqlErrors.ts"

interface RequestRow {
  readonly id: string
  readonly from_id: string
  readonly to_id: string
  readonly message: string
  readonly status: string
  readonly created_at: bigint
  readonly updated_at: bigint
}

interface ContactRow {
  readonly list_version: bigint
  readonly friend_id: string | null
  readonly state: string | null
  readonly removed: boolean | null
  readonly created_at: bigint | null
  readonly updated_at: bigint | null
  readonly version: bigint | null
}

const toRequest = (row: RequestRow): FriendRequest => ({
  id: row.id as FriendRequestId,
  from_id: row.from_id as UserId,
  to_id: row.to_id as UserId,
  message: row.message,
  status: row.status as FriendRequestStatus,
  created_at: toNumber(row.created_at),
  updated_at: toNumber(row.updated_at)
})

const REQUEST_COLUMNS = "id, from_id, to_id, message, status, created_at, updated_at"

/**
 * Requests in `friend_requests` (at most one pending per direction, by a partial unique index);
 * every user's list in `friendships`, one row per (user, friend) holding its last change, a
 * removed entry kept as a tombstone; each list's version in `contact_versions`.
 *
 * Every change between two users runs in one transaction that first locks both users' version
 * rows, in id order: changes touching a user queue behind each other, a version is handed out
 * once, and the checks a change makes (friends? blocked? pending?) still hold when it writes.
 */
export const layer: Layer.Layer<FriendStore, never, SqlClient.SqlClient> = Layer.effect(
  FriendStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const columns = sql.literal(REQUEST_COLUMNS)

    const lockUsers = Effect.fnUntraced(function*(a: UserId, b: UserId) {
      const users = a === b ? [a] as const : a < b ? [a, b] as const : [b, a] as const
      yield* sql`
        INSERT INTO contact_versions ${sql.insert(Arr.map(users, (user_id) => ({ user_id, version: 0 })))}
        ON CONFLICT (user_id) DO NOTHING`
      yield* sql`SELECT user_id FROM contact_versions WHERE user_id IN ${sql.in(users)} ORDER BY user_id COLLATE "C" FOR UPDATE`
    })

    const stateOf = Effect.fnUntraced(function*(user: UserId, other: UserId) {
      const rows = yield* sql<{ readonly state: string }>`
        SELECT state FROM friendships WHERE user_id = ${user} AND friend_id = ${other} AND NOT removed`
      return rows[0]?.state as ContactState | undefined
    })

    const bump = Effect.fnUntraced(function*(user: UserId) {
      const rows = yield* sql<{ readonly version: bigint }>`
        UPDATE contact_versions SET version = version + 1 WHERE user_id = ${user} RETURNING version`
      return toNumber(rows[0]?.version)
    })

    const put = Effect.fnUntraced(function*(user: UserId, other: UserId, state: ContactState, now: number) {
      const version = yield* bump(user)
      yield* sql`
        INSERT INTO friendships ${
        sql.insert({ user_id: user, friend_id: other, state, removed: false, created_at: now, updated_at: now, version })
      }
        ON CONFLICT (user_id, friend_id) DO UPDATE SET
          state = EXCLUDED.state, removed = FALSE, created_at = EXCLUDED.created_at,
          updated_at = EXCLUDED.updated_at, version = EXCLUDED.version`
    })

    const remove = Effect.fnUntraced(function*(user: UserId, other: UserId, now: number) {
      const version = yield* bump(user)
      yield* sql`
        UPDATE friendships SET removed = TRUE, updated_at = ${now}, version = ${version}
        WHERE user_id = ${user} AND friend_id = ${other}`
    })

    const pending = Effect.fnUntraced(function*(from: UserId, to: UserId) {
      const rows = yield* sql<RequestRow>`
        SELECT ${columns} FROM friend_requests WHERE from_id = ${from} AND to_id = ${to} AND status = 'pending'`
      return rows[0] === undefined ? undefined : toRequest(rows[0])
    })

    const closePending = (from: UserId, to: UserId, status: FriendRequestStatus, now: number) =>
      sql`
        UPDATE friend_requests SET status = ${status}, updated_at = ${now}
        WHERE from_id = ${from} AND to_id = ${to} AND status = 'pending'`

    const byId = Effect.fnUntraced(function*(id: FriendRequestId) {
      const rows = yield* sql<RequestRow>`SELECT ${columns} FROM friend_requests WHERE id = ${id}`
      return rows[0] === undefined ? undefined : toRequest(rows[0])
    })

    const request = Effect.fn("SqlFriendStore.request")(function*(input: NewFriendRequest) {
      return yield* sql.withTransaction(Effect.gen(function*(): Effect.fn.Return<RequestOutcome, SqlError.SqlError> {
        yield* lockUsers(input.from_id, input.to_id)
        const mine = yield* stateOf(input.from_id, input.to_id)
        if (mine === "blocked") return { _tag: "RequesterBlocked" }
        if (mine === "friend") return { _tag: "AlreadyFriends" }
        const delivered = (yield* stateOf(input.to_id, input.from_id)) !== "blocked"
        const repeated = yield* pending(input.from_id, input.to_id)
        // The same id: an earlier attempt of this call stored it and its answer was lost.
        if (repeated !== undefined) {
          return repeated.id === input.id ? { _tag: "Sent", request: repeated, delivered } : { _tag: "AlreadyPending", request: repeated }
        }
        const incoming = yield* pending(input.to_id, input.from_id)
        if (incoming !== undefined) return { _tag: "IncomingPending", request: incoming }
        const created: FriendRequest = { ...input, status: "pending", updated_at: input.created_at }
        yield* sql`INSERT INTO friend_requests ${sql.insert({ ...created })}`
        return { _tag: "Sent", request: created, delivered }
      })).pipe(portCall("FriendStore", "request"))
    })

    const answer = (operation: string, status: "accepted" | "rejected") =>
      Effect.fn(`SqlFriendStore.${operation}`)(function*(id: FriendRequestId, by: UserId, now: number) {
        return yield* sql.withTransaction(Effect.gen(function*(): Effect.fn.Return<AnswerOutcome, SqlError.SqlError> {
          const found = yield* byId(id)
          if (found === undefined || found.to_id !== by) return { _tag: "NotFound" }
          const from = found.from_id
          yield* lockUsers(from, by)
          if ((yield* stateOf(by, from)) === "blocked") return { _tag: "NotFound" }
          // Read again under the locks: what was pending before may have been answered since.
          const current = (yield* byId(id))!
          if (current.status !== "pending") return { _tag: "NotPending", request: current }
          yield* sql`UPDATE friend_requests SET status = ${status}, updated_at = ${now} WHERE id = ${id}`
          if (status === "accepted") {
            yield* closePending(by, from, "accepted", now)
            if ((yield* stateOf(from, by)) === undefined) yield* put(from, by, "friend", now)
            if ((yield* stateOf(by, from)) === undefined) yield* put(by, from, "friend", now)
          }
          return { _tag: "Answered", request: { ...current, status, updated_at: now } }
        })).pipe(portCall("FriendStore", operation))
      })

    const requests = Effect.fn("SqlFriendStore.requests")(function*(user: UserId) {
      const rows = yield* sql<RequestRow>`
        SELECT ${columns} FROM friend_requests r
        WHERE r.status = 'pending' AND (
          r.from_id = ${user} OR (
            r.to_id = ${user} AND NOT EXISTS (
              SELECT 1 FROM friendships f
              WHERE f.user_id = ${user} AND f.friend_id = r.from_id AND f.state = 'blocked' AND NOT f.removed)))
        ORDER BY r.created_at, r.id COLLATE "C"`.pipe(portCall("FriendStore", "requests"))
      const all = rows.map(toRequest)
      return { incoming: all.filter((r) => r.to_id === user), outgoing: all.filter((r) => r.from_id === user) }
    })

    const unfriend = Effect.fn("SqlFriendStore.unfriend")(function*(user: UserId, friend: UserId, now: number) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        yield* lockUsers(user, friend)
        if ((yield* stateOf(user, friend)) !== "friend") return false
        yield* remove(user, friend, now)
        if ((yield* stateOf(friend, user)) === "friend") yield* remove(friend, user, now)
        return true
      })).pipe(portCall("FriendStore", "unfriend"))
    })

    const block = Effect.fn("SqlFriendStore.block")(function*(user: UserId, target: UserId, now: number) {
      return yield* sql.withTransaction(Effect.gen(function*(): Effect.fn.Return<BlockOutcome, SqlError.SqlError> {
        yield* lockUsers(user, target)
        const mine = yield* stateOf(user, target)
        if (mine === "blocked") return { changed: false, wereFriends: false }
        yield* put(user, target, "blocked", now)
        if ((yield* stateOf(target, user)) === "friend") yield* remove(target, user, now)
        yield* closePending(user, target, "rejected", now)
        return { changed: true, wereFriends: mine === "friend" }
      })).pipe(portCall("FriendStore", "block"))
    })

    const unblock = Effect.fn("SqlFriendStore.unblock")(function*(user: UserId, target: UserId, now: number) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        yield* lockUsers(user, target)
        if ((yield* stateOf(user, target)) !== "blocked") return false
        yield* remove(user, target, now)
        yield* closePending(target, user, "rejected", now)
        return true
      })).pipe(portCall("FriendStore", "unblock"))
    })

    const blocking = Effect.fn("SqlFriendStore.blocking")(function*(pairs: ReadonlyArray<BlockPair>) {
      if (pairs.length === 0) return []
      const keys = pairs.map(({ blocked, blocker }) => sql`(${blocker}, ${blocked})`)
      const rows = yield* sql<{ readonly user_id: string; readonly friend_id: string }>`
        SELECT user_id, friend_id FROM friendships
        WHERE (user_id, friend_id) IN (${sql.csv(keys)}) AND state = 'blocked' AND NOT removed`.pipe(
        portCall("FriendStore", "blocking")
      )
      const found = new Set(rows.map((row) => `${row.user_id}\n${row.friend_id}`))
      return pairs.filter(({ blocked, blocker }) => found.has(`${blocker}\n${blocked}`))
    })

    const blockedBy = Effect.fn("SqlFriendStore.blockedBy")(function*(blockers: ReadonlyArray<UserId>) {
      const found = new Map<UserId, Array<UserId>>(blockers.map((blocker) => [blocker, []]))
      if (found.size === 0) return found
      const rows = yield* sql<{ readonly user_id: string; readonly friend_id: string }>`
        SELECT user_id, friend_id FROM friendships
        WHERE user_id IN ${sql.in([...found.keys()])} AND state = 'blocked' AND NOT removed`.pipe(
        portCall("FriendStore", "blockedBy")
      )
      for (const row of rows) found.get(row.user_id as UserId)?.push(row.friend_id as UserId)
      return found
    })

    const changesSince = Effect.fn("SqlFriendStore.changesSince")(function*(user: UserId, since: number) {
      // One statement, one snapshot: the version answered is the one the entries are at.
      const rows = yield* sql<ContactRow>`
        WITH v AS (SELECT COALESCE(MAX(version), 0) AS list_version FROM contact_versions WHERE user_id = ${user})
        SELECT v.list_version, f.friend_id, f.state, f.removed, f.created_at, f.updated_at, f.version
        FROM v LEFT JOIN friendships f ON f.user_id = ${user} AND (
          CASE WHEN ${since} <= 0 OR ${since} > v.list_version THEN NOT f.removed ELSE f.version > ${since} END)
        ORDER BY f.version`.pipe(portCall("FriendStore", "changesSince"))
      const version = toNumber(rows[0]?.list_version)
      const friends = rows.flatMap((row): Array<Contact> =>
        row.friend_id === null ? [] : [{
          user_id: row.friend_id as UserId,
          state: row.state as ContactState,
          updated_version: toNumber(row.version),
          ...(row.removed === true ? { removed: true as const } : {}),
          created_at: toNumber(row.created_at),
          updated_at: toNumber(row.updated_at)
        }]
      )
      return { version, full: since <= 0 || since > version, friends } satisfies ContactChanges
    })

    return FriendStore.of({
      request,
      accept: answer("accept", "accepted"),
      reject: answer("reject", "rejected"),
      requests,
      unfriend,
      block,
      unblock,
      blocking,
      blockedBy,
      changesSince
    })
  })
)
