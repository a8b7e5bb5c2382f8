import type { Group, GroupMember, GroupRole } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { GroupStore } from "@im/ports/GroupStore"
import { Array as Arr, Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { chunks, portCall, toNumber } from "./SqlErrors.ts"

const CHUNK = 5_000

interface GroupRow {
  readonly id: string
  readonly name: string
  readonly owner_id: string
  readonly created_at: bigint
}

interface MemberRow {
  readonly user_id: string
  readonly role: string
  readonly joined_at: bigint
}

const toGroup = (row: GroupRow): Group => ({
  id: row.id as GroupId,
  name: row.name,
  owner_id: row.owner_id as UserId,
  created_at: toNumber(row.created_at)
})

const toMember = (row: MemberRow): GroupMember => ({
  user_id: row.user_id as UserId,
  role: row.role as GroupRole,
  joined_at: toNumber(row.joined_at)
})

/** Groups in `groups`, members in `group_members` (primary key (group_id, user_id)). */
export const layer: Layer.Layer<GroupStore, never, SqlClient.SqlClient> = Layer.effect(
  GroupStore,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient

    const insertMembers = (id: GroupId, members: ReadonlyArray<GroupMember>) =>
      Effect.forEach(chunks(members, CHUNK), (part) =>
        sql<{ readonly user_id: string }>`
          INSERT INTO group_members ${sql.insert(Arr.map(part, (m) => ({ group_id: id, user_id: m.user_id, role: m.role, joined_at: m.joined_at })))}
          ON CONFLICT DO NOTHING
          RETURNING user_id`).pipe(Effect.map((rows) => rows.flat().map((row) => row.user_id as UserId)))

    const create = Effect.fn("SqlGroupStore.create")(function*(group: Group, members: ReadonlyArray<GroupMember>) {
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO groups ${sql.insert({ ...group })} ON CONFLICT DO NOTHING`
        if (members.length > 0) yield* insertMembers(group.id, members)
      })).pipe(portCall("GroupStore", "create"))
    })

    const get = Effect.fn("SqlGroupStore.get")(function*(id: GroupId) {
      const rows = yield* sql<GroupRow>`SELECT id, name, owner_id, created_at FROM groups WHERE id = ${id}`.pipe(
        portCall("GroupStore", "get")
      )
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

    const removeMember = Effect.fn("SqlGroupStore.removeMember")(function*(id: GroupId, user: UserId) {
      const rows = yield* sql<{ readonly user_id: string }>`
        DELETE FROM group_members WHERE group_id = ${id} AND user_id = ${user} RETURNING user_id`.pipe(
        portCall("GroupStore", "removeMember")
      )
      return rows.length > 0
    })

    const groupsOf = Effect.fn("SqlGroupStore.groupsOf")(function*(user: UserId) {
      const rows = yield* sql<GroupRow>`
        SELECT g.id, g.name, g.owner_id, g.created_at FROM groups g
        JOIN group_members m ON m.group_id = g.id
        WHERE m.user_id = ${user}
        ORDER BY g.created_at, g.id`.pipe(portCall("GroupStore", "groupsOf"))
      return rows.map(toGroup)
    })

    return GroupStore.of({ create, get, members, role, addMembers, removeMember, groupsOf })
  })
)
