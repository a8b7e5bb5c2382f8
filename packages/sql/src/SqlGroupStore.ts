import type { Group, GroupInfoPatch, GroupMember, GroupRole, JoinRequest, JoinRequestId } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { type AcceptResult, type AdmitResult, GroupStore } from "@im/ports/GroupStore"
import { Array as Arr, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

const CHUNK = 5_000

interface GroupRow {
  readonly id: string
  readonly name: string
  readonly owner_id: string
  readonly created_at: bigint
  readonly avatar: string | null
  readonly announcement: string | null
  readonly join_approval: boolean
}

interface MemberRow {
  readonly user_id: string
  readonly role: string
  readonly joined_at: bigint
}

interface RequestRow {
  readonly id: string
  readonly group_id: string
  readonly user_id: string
  readonly message: string | null
  readonly status: string
  readonly created_at: bigint
}

const toGroup = (row: GroupRow): Group => ({
  id: row.id as GroupId,
  name: row.name,
  owner_id: row.owner_id as UserId,
  created_at: toNumber(row.created_at),
  ...(row.avatar === null ? {} : { avatar: row.avatar }),
  ...(row.announcement === null ? {} : { announcement: row.announcement }),
  join_approval: row.join_approval
})

const toMember = (row: MemberRow): GroupMember => ({
  user_id: row.user_id as UserId,
  role: row.role as GroupRole,
  joined_at: toNumber(row.joined_at)
})

const toRequest = (row: RequestRow): JoinRequest => ({
  id: row.id as JoinRequestId,
  group_id: row.group_id as GroupId,
  user_id: row.user_id as UserId,
  ...(row.message === null ? {} : { message: row.message }),
  status: row.status as JoinRequest["status"],
  created_at: toNumber(row.created_at)
})

/**
 * Groups in `groups`, members in `group_members` (primary key (group_id, user_id)), join
 * requests in `group_join_requests`. The writes that must see the member count or the owner
 * they change lock the group's row first, so they run one at a time per group.
 */
export const layer: Layer.Layer<GroupStore, never, SqlClient.SqlClient> = Layer.effect(
  GroupStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const groupColumns = sql.literal("id, name, owner_id, created_at, avatar, announcement, join_approval")

    const insertMembers = (id: GroupId, members: ReadonlyArray<GroupMember>) =>
      Effect.forEach(chunks(members, CHUNK), (part) =>
        sql<{ readonly user_id: string }>`
          INSERT INTO group_members ${sql.insert(Arr.map(part, (m) => ({ group_id: id, user_id: m.user_id, role: m.role, joined_at: m.joined_at })))}
          ON CONFLICT DO NOTHING
          RETURNING user_id`).pipe(Effect.map((rows) => rows.flat().map((row) => row.user_id as UserId)))

    /** Locks the group's row for the rest of the transaction; false when there is no such group. */
    const lockGroup = (id: GroupId) =>
      sql<{ readonly id: string }>`SELECT id FROM groups WHERE id = ${id} FOR UPDATE`.pipe(Effect.map((rows) => rows.length > 0))

    const memberCount = (id: GroupId) =>
      sql<{ readonly n: bigint | number | string }>`SELECT count(*) AS n FROM group_members WHERE group_id = ${id}`.pipe(
        Effect.map((rows) => toNumber(rows[0]?.n))
      )

    const create = Effect.fn("SqlGroupStore.create")(function*(group: Group, members: ReadonlyArray<GroupMember>) {
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO groups ${
          sql.insert({
            id: group.id,
            name: group.name,
            owner_id: group.owner_id,
            created_at: group.created_at,
            avatar: group.avatar ?? null,
            announcement: group.announcement ?? null,
            join_approval: group.join_approval
          })
        } ON CONFLICT DO NOTHING`
        if (members.length > 0) yield* insertMembers(group.id, members)
      })).pipe(portCall("GroupStore", "create"))
    })

    const get = Effect.fn("SqlGroupStore.get")(function*(id: GroupId) {
      const rows = yield* sql<GroupRow>`SELECT ${groupColumns} FROM groups WHERE id = ${id}`.pipe(portCall("GroupStore", "get"))
      return Option.map(Option.fromNullishOr(rows[0]), toGroup)
    })

    const members = Effect.fn("SqlGroupStore.members")(function*(id: GroupId) {
      const rows = yield* sql<MemberRow>`
        SELECT user_id, role, joined_at FROM group_members WHERE group_id = ${id}
        ORDER BY joined_at, CASE role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, user_id`.pipe(portCall("GroupStore", "members"))
      return rows.map(toMember)
    })

    const role = Effect.fn("SqlGroupStore.role")(function*(id: GroupId, user: UserId) {
      const rows = yield* sql<{ readonly role: string }>`
        SELECT role FROM group_members WHERE group_id = ${id} AND user_id = ${user}`.pipe(portCall("GroupStore", "role"))
      return Option.map(Option.fromNullishOr(rows[0]), (row) => row.role as GroupRole)
    })

    const addMembers = Effect.fn("SqlGroupStore.addMembers")(function*(id: GroupId, added: ReadonlyArray<GroupMember>) {
      if (added.length === 0) return []
      return yield* insertMembers(id, added).pipe(portCall("GroupStore", "addMembers"))
    })

    const admit = Effect.fn("SqlGroupStore.admit")(function*(id: GroupId, added: ReadonlyArray<GroupMember>, max: number) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        if (!(yield* lockGroup(id))) return { _tag: "NoGroup" } as AdmitResult
        const wanted = [...new Set(added.map((m) => m.user_id))]
        const present = wanted.length === 0 ? 0 : (yield* Effect.forEach(chunks(wanted, CHUNK), (part) =>
          sql<{ readonly n: bigint | number | string }>`
            SELECT count(*) AS n FROM group_members WHERE group_id = ${id} AND user_id IN ${sql.in(part)}`)).reduce(
            (sum, rows) => sum + toNumber(rows[0]?.n),
            0
          )
        if ((yield* memberCount(id)) + wanted.length - present > max) return { _tag: "Full" } as AdmitResult
        const inserted = added.length === 0 ? [] : yield* insertMembers(id, added)
        return { _tag: "Added", added: inserted } as AdmitResult
      })).pipe(portCall("GroupStore", "admit"))
    })

    const removeMember = Effect.fn("SqlGroupStore.removeMember")(function*(id: GroupId, user: UserId) {
      const rows = yield* sql<{ readonly user_id: string }>`
        DELETE FROM group_members WHERE group_id = ${id} AND user_id = ${user} RETURNING user_id`.pipe(
        portCall("GroupStore", "removeMember")
      )
      return rows.length > 0
    })

    const groupsOf = Effect.fn("SqlGroupStore.groupsOf")(function*(user: UserId) {
      const rows = yield* sql<GroupRow>`
        SELECT g.id, g.name, g.owner_id, g.created_at, g.avatar, g.announcement, g.join_approval FROM groups g
        JOIN group_members m ON m.group_id = g.id
        WHERE m.user_id = ${user}
        ORDER BY g.created_at, g.id`.pipe(portCall("GroupStore", "groupsOf"))
      return rows.map(toGroup)
    })

    const update = Effect.fn("SqlGroupStore.update")(function*(id: GroupId, patch: GroupInfoPatch) {
      const set: Record<string, string | boolean | null> = {}
      if (patch.name !== undefined) set["name"] = patch.name
      if (patch.avatar !== undefined) set["avatar"] = patch.avatar
      if (patch.announcement !== undefined) set["announcement"] = patch.announcement
      if (patch.join_approval !== undefined) set["join_approval"] = patch.join_approval
      if (Object.keys(set).length === 0) return yield* get(id)
      const rows = yield* sql<GroupRow>`
        UPDATE groups SET ${sql.update(set)} WHERE id = ${id} RETURNING ${groupColumns}`.pipe(portCall("GroupStore", "update"))
      return Option.map(Option.fromNullishOr(rows[0]), toGroup)
    })

    const setRole = Effect.fn("SqlGroupStore.setRole")(function*(id: GroupId, user: UserId, newRole: "admin" | "member") {
      const rows = yield* sql<{ readonly user_id: string }>`
        UPDATE group_members SET role = ${newRole}
        WHERE group_id = ${id} AND user_id = ${user} AND role <> 'owner'
        RETURNING user_id`.pipe(portCall("GroupStore", "setRole"))
      return rows.length > 0
    })

    const transfer = Effect.fn("SqlGroupStore.transfer")(function*(id: GroupId, from: UserId, to: UserId) {
      if (from === to) return false
      return yield* sql.withTransaction(Effect.gen(function*() {
        const owned = yield* sql<{ readonly id: string }>`
          SELECT id FROM groups WHERE id = ${id} AND owner_id = ${from} FOR UPDATE`
        if (owned.length === 0) return false
        const target = yield* sql<{ readonly user_id: string }>`
          UPDATE group_members SET role = 'owner' WHERE group_id = ${id} AND user_id = ${to} RETURNING user_id`
        if (target.length === 0) return false
        yield* sql`UPDATE group_members SET role = 'admin' WHERE group_id = ${id} AND user_id = ${from}`
        yield* sql`UPDATE groups SET owner_id = ${to} WHERE id = ${id}`
        return true
      })).pipe(portCall("GroupStore", "transfer"))
    })

    const dismiss = Effect.fn("SqlGroupStore.dismiss")(function*(id: GroupId) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        const deleted = yield* sql<{ readonly id: string }>`DELETE FROM groups WHERE id = ${id} RETURNING id`
        const rows = yield* sql<{ readonly user_id: string }>`
          DELETE FROM group_members WHERE group_id = ${id} RETURNING user_id`
        yield* sql`DELETE FROM group_join_requests WHERE group_id = ${id}`
        return deleted.length === 0 ? [] : rows.map((row) => row.user_id as UserId)
      })).pipe(portCall("GroupStore", "dismiss"))
    })

    const requestColumns = sql.literal("id, group_id, user_id, message, status, created_at")

    const requestJoin = Effect.fn("SqlGroupStore.requestJoin")(function*(request: JoinRequest) {
      return yield* sql.withTransaction(Effect.gen(function*() {
        // Holds off a dismiss until the request is in, so that the dismiss deletes it too.
        if (!(yield* lockGroup(request.group_id))) return Option.none()
        const inserted = yield* sql<RequestRow>`
          INSERT INTO group_join_requests ${
          sql.insert({
            id: request.id,
            group_id: request.group_id,
            user_id: request.user_id,
            message: request.message ?? null,
            status: "pending",
            created_at: request.created_at
          })
        }
          ON CONFLICT DO NOTHING
          RETURNING ${requestColumns}`
        if (inserted.length > 0) return Option.some({ request: toRequest(inserted[0]!), created: true })
        const pending = yield* sql<RequestRow>`
          SELECT ${requestColumns} FROM group_join_requests
          WHERE group_id = ${request.group_id} AND user_id = ${request.user_id} AND status = 'pending'`
        // A retried insert whose first try went in finds its own row here.
        return Option.map(Option.fromNullishOr(pending[0]), (row) => ({ request: toRequest(row), created: row.id === request.id }))
      })).pipe(portCall("GroupStore", "requestJoin"))
    })

    const joinRequests = Effect.fn("SqlGroupStore.joinRequests")(function*(id: GroupId) {
      const rows = yield* sql<RequestRow>`
        SELECT r.id, r.group_id, r.user_id, r.message, r.status, r.created_at FROM group_join_requests r
        WHERE r.group_id = ${id} AND r.status = 'pending'
          AND NOT EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = r.group_id AND m.user_id = r.user_id)
        ORDER BY r.created_at, r.id`.pipe(portCall("GroupStore", "joinRequests"))
      return rows.map(toRequest)
    })

    const acceptJoinRequest = Effect.fn("SqlGroupStore.acceptJoinRequest")(
      function*(id: GroupId, requestId: JoinRequestId, joined_at: number, max: number) {
        return yield* sql.withTransaction(Effect.gen(function*() {
          if (!(yield* lockGroup(id))) return { _tag: "NotPending" } as AcceptResult
          const found = yield* sql<RequestRow>`
            SELECT ${requestColumns} FROM group_join_requests
            WHERE id = ${requestId} AND group_id = ${id} AND status = 'pending' FOR UPDATE`
          if (found.length === 0) return { _tag: "NotPending" } as AcceptResult
          const request = toRequest(found[0]!)
          const already = (yield* sql`
            SELECT 1 FROM group_members WHERE group_id = ${id} AND user_id = ${request.user_id}`).length > 0
          if (!already && (yield* memberCount(id)) + 1 > max) return { _tag: "Full" } as AcceptResult
          yield* sql`UPDATE group_join_requests SET status = 'accepted' WHERE id = ${requestId}`
          if (!already) yield* insertMembers(id, [{ user_id: request.user_id, role: "member", joined_at }])
          return { _tag: "Accepted", request: { ...request, status: "accepted" }, added: !already } as AcceptResult
        })).pipe(portCall("GroupStore", "acceptJoinRequest"))
      }
    )

    const rejectJoinRequest = Effect.fn("SqlGroupStore.rejectJoinRequest")(function*(id: GroupId, requestId: JoinRequestId) {
      const rows = yield* sql<RequestRow>`
        UPDATE group_join_requests SET status = 'rejected'
        WHERE id = ${requestId} AND group_id = ${id} AND status = 'pending'
        RETURNING ${requestColumns}`.pipe(portCall("GroupStore", "rejectJoinRequest"))
      return Option.map(Option.fromNullishOr(rows[0]), toRequest)
    })

    return GroupStore.of({
      create,
      get,
      members,
      role,
      addMembers,
      admit,
      removeMember,
      groupsOf,
      update,
      setRole,
      transfer,
      dismiss,
      requestJoin,
      joinRequests,
      acceptJoinRequest,
      rejectJoinRequest
    })
  })
)
