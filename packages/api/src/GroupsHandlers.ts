import { Forbidden, GroupNotFound, ServiceUnavailable, UnknownUsers } from "@im/domain/Errors"
import type { GroupMember } from "@im/domain/Group"
import { GroupId, type UserId } from "@im/domain/Ids"
import { GroupStore } from "@im/ports/GroupStore"
import type { PortError } from "@im/ports/PortError"
import { UserStore } from "@im/ports/UserStore"
import { Clock, Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { CurrentUser, ImApi } from "./Api.ts"

const storeUnavailable = (error: PortError) =>
  Effect.logError("group store failed", error).pipe(
    Effect.andThen(Effect.fail(new ServiceUnavailable({ message: "storage is unavailable, try again" })))
  )

/** Groups: every route checks the caller's membership and role; a non-member learns nothing. */
export const GroupsHandlers = HttpApiBuilder.group(
  ImApi,
  "groups",
  Effect.fn(function*(handlers) {
    const groups = yield* GroupStore
    const users = yield* UserStore

    /** The caller's role, or 404 whether the group is missing or the caller is not in it. */
    const roleOf = Effect.fn(function*(group: GroupId, user: UserId) {
      const role = yield* groups.role(group, user)
      if (Option.isNone(role)) return yield* new GroupNotFound({ message: `no group ${group} of yours` })
      return role.value
    })

    const existingUsers = Effect.fn(function*(ids: ReadonlyArray<UserId>) {
      const unique = [...new Set(ids)]
      const found = yield* users.existing(unique)
      const unknown = unique.filter((id) => !found.has(id))
      if (unknown.length > 0) return yield* new UnknownUsers({ message: "no such users", user_ids: unknown })
      return unique
    })

    const newMembers = (ids: ReadonlyArray<UserId>, joined_at: number): Array<GroupMember> =>
      ids.map((user_id) => ({ user_id, role: "member", joined_at }))

    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const owner = yield* CurrentUser
          const ids = (yield* existingUsers(payload.member_ids)).filter((id) => id !== owner)
          const now = yield* Clock.currentTimeMillis
          const group = { id: GroupId.make(`g_${randomBytes(12).toString("base64url")}`), name: payload.name, owner_id: owner, created_at: now }
          yield* groups.create(group, [{ user_id: owner, role: "owner", joined_at: now }, ...newMembers(ids, now)])
          yield* Effect.logInfo("group created", { group: group.id, members: ids.length + 1 })
          return group
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("mine", () =>
        Effect.gen(function*() {
          return yield* groups.groupsOf(yield* CurrentUser)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("get", ({ params }) =>
        Effect.gen(function*() {
          yield* roleOf(params.group_id, yield* CurrentUser)
          return Option.getOrThrow(yield* groups.get(params.group_id))
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("members", ({ params }) =>
        Effect.gen(function*() {
          yield* roleOf(params.group_id, yield* CurrentUser)
          return yield* groups.members(params.group_id)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("invite", ({ params, payload }) =>
        Effect.gen(function*() {
          yield* roleOf(params.group_id, yield* CurrentUser)
          const ids = yield* existingUsers(payload.user_ids)
          const current = yield* groups.members(params.group_id)
          if (current.length + ids.length > 2_000) return yield* new Forbidden({ message: "a group has at most 2000 members" })
          const added = yield* groups.addMembers(params.group_id, newMembers(ids, yield* Clock.currentTimeMillis))
          return { added }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("remove", ({ params }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          const callerRole = yield* roleOf(params.group_id, caller)
          const targetRole = yield* groups.role(params.group_id, params.user_id)
          if (Option.isNone(targetRole)) return yield* new GroupNotFound({ message: `${params.user_id} is not a member` })
          if (targetRole.value === "owner") {
            return yield* new Forbidden({ message: "the owner cannot leave or be removed; transfer the group first" })
          }
          const allowed = params.user_id === caller ||
            callerRole === "owner" ||
            (callerRole === "admin" && targetRole.value === "member")
          if (!allowed) return yield* new Forbidden({ message: `a ${callerRole} cannot remove a ${targetRole.value}` })
          yield* groups.removeMember(params.group_id, params.user_id)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
  })
)
