import { Chat } from "@im/chat/Chat"
import { AlreadyMember, Forbidden, GroupNotFound, JoinRequestNotFound, UnknownUsers } from "@im/domain/Errors"
import { type Group, type GroupInfoPatch, type GroupMember, type GroupRole, JoinRequestId, MAX_GROUP_MEMBERS } from "@im/domain/Group"
import { GroupId, type UserId } from "@im/domain/Ids"
import type { NoticeEvent } from "@im/domain/Notice"
import { GroupStore } from "@im/ports/GroupStore"
import { UserStore } from "@im/ports/UserStore"
import { Clock, Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { CurrentUser, ImApi } from "./Api.ts"
import { noticePublisher } from "./Notices.ts"
import { storeUnavailable } from "./StoreUnavailable.ts"

/** Users named in one member_joined notice: its content stays well under the 16,384-character limit. */
const JOINED_PER_NOTICE = 200

const full = new Forbidden({ message: `a group has at most ${MAX_GROUP_MEMBERS} members` })

const chunked = <A>(items: ReadonlyArray<A>, size: number): Array<ReadonlyArray<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, i) => items.slice(i * size, (i + 1) * size))

/**
 * Groups. Every route but join checks the caller's membership first (a non-member gets 404
 * whether or not the group exists) and then the caller's role (403), before changing anything.
 * Each change is made in the store and then told to those concerned with a notice carrying the
 * group's id (docs/protocol.md, "Groups"); a notice that cannot be published is logged and the
 * change still answers success: the store is the truth, and the members list shows it.
 */
export const GroupsHandlers = HttpApiBuilder.group(
  ImApi,
  "groups",
  Effect.fn(function*(handlers) {
    const groups = yield* GroupStore
    const users = yield* UserStore
    const chat = yield* Chat

    /** The caller's role, or 404 whether the group is missing or the caller is not in it. */
    const roleOf = Effect.fn(function*(group: GroupId, user: UserId) {
      const role = yield* groups.role(group, user)
      if (Option.isNone(role)) return yield* new GroupNotFound({ message: `no group ${group} of yours` })
      return role.value
    })

    /** The caller's role if it is one of `allowed`, else 403 (404 for a non-member). */
    const requireRole = Effect.fn(function*(group: GroupId, user: UserId, allowed: ReadonlyArray<GroupRole>, what: string) {
      const role = yield* roleOf(group, user)
      if (!allowed.includes(role)) return yield* new Forbidden({ message: `only the ${allowed.join(" or ")} may ${what}` })
      return role
    })

    const groupOf = Effect.fn(function*(group: GroupId) {
      const found = yield* groups.get(group)
      if (Option.isNone(found)) return yield* new GroupNotFound({ message: `no group ${group}` })
      return found.value
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

    const memberIds = (group: GroupId) => Effect.map(groups.members(group), (members) => members.map((m) => m.user_id))

    /** Publishes one notice about the group; a failure is logged (the change is made already). */
    const publish = noticePublisher(chat)
    const tell = (sender: UserId, to: ReadonlyArray<UserId>, group: GroupId, event: NoticeEvent) =>
      publish({ sender_id: sender, to, group_id: group, event })

    /** Tells the members as they are now (the new ones among them) who joined. */
    const tellJoined = Effect.fn(function*(sender: UserId, group: GroupId, joined: ReadonlyArray<UserId>, how: string) {
      if (joined.length === 0) return
      const to = yield* memberIds(group)
      for (const part of chunked(joined, JOINED_PER_NOTICE)) {
        yield* tell(sender, to, group, { type: "member_joined", user_ids: part, how })
      }
    })

    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const owner = yield* CurrentUser
          const ids = (yield* existingUsers(payload.member_ids)).filter((id) => id !== owner)
          const now = yield* Clock.currentTimeMillis
          const group: Group = {
            id: GroupId.make(`g_${randomBytes(12).toString("base64url")}`),
            name: payload.name,
            owner_id: owner,
            created_at: now,
            join_approval: false
          }
          yield* groups.create(group, [{ user_id: owner, role: "owner", joined_at: now }, ...newMembers(ids, now)])
          yield* Effect.logInfo("group created", { group: group.id, members: ids.length + 1 })
          yield* tell(owner, [owner, ...ids], group.id, { type: "group_created", name: group.name, owner_id: owner })
          return group
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("mine", () =>
        Effect.gen(function*() {
          return yield* groups.groupsOf(yield* CurrentUser)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("get", ({ params }) =>
        Effect.gen(function*() {
          yield* roleOf(params.group_id, yield* CurrentUser)
          return yield* groupOf(params.group_id)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("members", ({ params }) =>
        Effect.gen(function*() {
          yield* roleOf(params.group_id, yield* CurrentUser)
          return yield* groups.members(params.group_id)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("invite", ({ params, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          const role = yield* roleOf(params.group_id, caller)
          // With join approval on, the owner and admins decide who comes in: members may not invite.
          if (role === "member" && (yield* groupOf(params.group_id)).join_approval) {
            return yield* new Forbidden({ message: "this group needs approval to join: only the owner or an admin may invite" })
          }
          const ids = yield* existingUsers(payload.user_ids)
          const result = yield* groups.admit(params.group_id, newMembers(ids, yield* Clock.currentTimeMillis), MAX_GROUP_MEMBERS)
          if (result._tag === "NoGroup") return yield* new GroupNotFound({ message: `no group ${params.group_id}` })
          if (result._tag === "Full") return yield* full
          yield* tellJoined(caller, params.group_id, result.added, "invited")
          return { added: result.added }
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
          if (!(yield* groups.removeMember(params.group_id, params.user_id))) return
          const to = [...(yield* memberIds(params.group_id)), params.user_id]
          yield* tell(
            caller,
            to,
            params.group_id,
            params.user_id === caller
              ? { type: "member_left", user_id: params.user_id }
              : { type: "member_removed", user_id: params.user_id }
          )
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("update", ({ params, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          yield* requireRole(params.group_id, caller, ["owner", "admin"], "change the group's info")
          const before = yield* groupOf(params.group_id)
          const after = yield* groups.update(params.group_id, payload)
          if (Option.isNone(after)) return yield* new GroupNotFound({ message: `no group ${params.group_id}` })
          const changes = changedInfo(before, after.value)
          if (Object.keys(changes).length > 0) {
            yield* tell(caller, yield* memberIds(params.group_id), params.group_id, { type: "group_updated", changes })
          }
          return after.value
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("dismiss", ({ params }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          yield* requireRole(params.group_id, caller, ["owner"], "dismiss the group")
          // The store answers who the members were as it deletes them: they are the ones told.
          const members = yield* groups.dismiss(params.group_id)
          yield* Effect.logInfo("group dismissed", { group: params.group_id, members: members.length })
          yield* tell(caller, members, params.group_id, { type: "group_dismissed" })
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("setRole", ({ params, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          yield* requireRole(params.group_id, caller, ["owner"], "change roles")
          const members = yield* groups.members(params.group_id)
          const target = members.find((m) => m.user_id === params.user_id)
          if (target === undefined) return yield* new GroupNotFound({ message: `${params.user_id} is not a member` })
          if (target.role === "owner") {
            return yield* new Forbidden({ message: "the owner's role changes only by transferring the group" })
          }
          if (target.role === payload.role) return target
          if (!(yield* groups.setRole(params.group_id, params.user_id, payload.role))) {
            return yield* new GroupNotFound({ message: `${params.user_id} is not a member` })
          }
          yield* tell(caller, yield* memberIds(params.group_id), params.group_id, {
            type: "role_changed",
            user_id: params.user_id,
            role: payload.role
          })
          return { ...target, role: payload.role }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("transfer", ({ params, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          yield* requireRole(params.group_id, caller, ["owner"], "transfer the group")
          if (payload.user_id === caller) return yield* groupOf(params.group_id)
          if (Option.isNone(yield* groups.role(params.group_id, payload.user_id))) {
            return yield* new GroupNotFound({ message: `${payload.user_id} is not a member` })
          }
          if (!(yield* groups.transfer(params.group_id, caller, payload.user_id))) {
            return yield* new Forbidden({ message: "the group changed meanwhile; try again" })
          }
          yield* tell(caller, yield* memberIds(params.group_id), params.group_id, {
            type: "owner_transferred",
            old_owner_id: caller,
            owner_id: payload.user_id
          })
          return yield* groupOf(params.group_id)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("join", ({ params, payload }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          const group = yield* groupOf(params.group_id)
          if (Option.isSome(yield* groups.role(group.id, caller))) {
            return yield* new AlreadyMember({ message: `you are a member of ${group.id} already` })
          }
          const now = yield* Clock.currentTimeMillis
          if (!group.join_approval) {
            const result = yield* groups.admit(group.id, newMembers([caller], now), MAX_GROUP_MEMBERS)
            if (result._tag === "NoGroup") return yield* new GroupNotFound({ message: `no group ${group.id}` })
            if (result._tag === "Full") return yield* full
            if (result.added.length === 0) return yield* new AlreadyMember({ message: `you are a member of ${group.id} already` })
            yield* tellJoined(caller, group.id, result.added, "joined")
            return { status: "joined" as const }
          }
          const asked = yield* groups.requestJoin({
            id: JoinRequestId.make(`jr_${randomBytes(12).toString("base64url")}`),
            group_id: group.id,
            user_id: caller,
            ...(payload.message === undefined ? {} : { message: payload.message }),
            status: "pending",
            created_at: now
          })
          if (Option.isNone(asked)) return yield* new GroupNotFound({ message: `no group ${group.id}` })
          const { created, request } = asked.value
          if (created) {
            const deciders = (yield* groups.members(group.id)).filter((m) => m.role !== "member").map((m) => m.user_id)
            yield* tell(caller, deciders, group.id, {
              type: "join_requested",
              request_id: request.id,
              user_id: caller,
              ...(request.message === undefined ? {} : { message: request.message })
            })
          }
          return { status: "pending" as const, request }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("joinRequests", ({ params }) =>
        Effect.gen(function*() {
          yield* requireRole(params.group_id, yield* CurrentUser, ["owner", "admin"], "see join requests")
          return yield* groups.joinRequests(params.group_id)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("acceptJoinRequest", ({ params }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          yield* requireRole(params.group_id, caller, ["owner", "admin"], "accept join requests")
          const result = yield* groups.acceptJoinRequest(
            params.group_id,
            params.request_id,
            yield* Clock.currentTimeMillis,
            MAX_GROUP_MEMBERS
          )
          if (result._tag === "NotPending") {
            return yield* new JoinRequestNotFound({ message: `no pending request ${params.request_id} in this group` })
          }
          if (result._tag === "Full") return yield* full
          if (result.added) yield* tellJoined(caller, params.group_id, [result.request.user_id], "approved")
          return result.request
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("rejectJoinRequest", ({ params }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentUser
          yield* requireRole(params.group_id, caller, ["owner", "admin"], "reject join requests")
          const rejected = yield* groups.rejectJoinRequest(params.group_id, params.request_id)
          if (Option.isNone(rejected)) {
            return yield* new JoinRequestNotFound({ message: `no pending request ${params.request_id} in this group` })
          }
          yield* tell(caller, [rejected.value.user_id], params.group_id, { type: "join_rejected", request_id: rejected.value.id })
          return rejected.value
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
  })
)

/** The info fields an update changed, with their new values (`null`: removed). */
const changedInfo = (before: Group, after: Group): GroupInfoPatch => {
  const changes: { -readonly [K in keyof GroupInfoPatch]: GroupInfoPatch[K] } = {}
  if (before.name !== after.name) changes.name = after.name
  if (before.avatar !== after.avatar) changes.avatar = after.avatar ?? null
  if (before.announcement !== after.announcement) changes.announcement = after.announcement ?? null
  if (before.join_approval !== after.join_approval) changes.join_approval = after.join_approval
  return changes
}
