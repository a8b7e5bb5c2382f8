import type { Group, GroupInfoPatch, GroupMember, GroupRole, JoinRequest, JoinRequestId } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { Context, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/** What adding members under a cap did. */
export type AdmitResult =
  /** Those who were not members yet are members now (`added`, possibly none). */
  | { readonly _tag: "Added"; readonly added: ReadonlyArray<UserId> }
  /** Adding them would pass the cap: nobody was added. */
  | { readonly _tag: "Full" }
  | { readonly _tag: "NoGroup" }

/** What accepting a join request did. */
export type AcceptResult =
  /** The request is accepted; `added` says whether its user became a member (not one already). */
  | { readonly _tag: "Accepted"; readonly request: JoinRequest; readonly added: boolean }
  /** No pending request of that id in that group. */
  | { readonly _tag: "NotPending" }
  /** The group is at its cap: nothing changed. */
  | { readonly _tag: "Full" }

/** Groups, their members and the requests to join them. */
export class GroupStore extends Context.Service<GroupStore, {
  /** Creates the group with its first members (the owner among them). */
  readonly create: (group: Group, members: ReadonlyArray<GroupMember>) => Effect.Effect<void, PortError>
  readonly get: (id: GroupId) => Effect.Effect<Option.Option<Group>, PortError>
  /** The members, in the order they joined. */
  readonly members: (id: GroupId) => Effect.Effect<ReadonlyArray<GroupMember>, PortError>
  /** The user's role in the group, if a member. */
  readonly role: (id: GroupId, user: UserId) => Effect.Effect<Option.Option<GroupRole>, PortError>
  /** Adds those not yet members; returns the ones added. */
  readonly addMembers: (id: GroupId, members: ReadonlyArray<GroupMember>) => Effect.Effect<ReadonlyArray<UserId>, PortError>
  /**
   * Adds those not yet members unless the group would then have more than `max` members, as one
   * step: concurrent calls cannot pass the cap together.
   */
  readonly admit: (id: GroupId, members: ReadonlyArray<GroupMember>, max: number) => Effect.Effect<AdmitResult, PortError>
  /** Returns whether the user was a member. */
  readonly removeMember: (id: GroupId, user: UserId) => Effect.Effect<boolean, PortError>
  /** The groups the user is a member of. */
  readonly groupsOf: (user: UserId) => Effect.Effect<ReadonlyArray<Group>, PortError>
  /** Changes the group's info; answers the group as it is now (none: no such group). */
  readonly update: (id: GroupId, patch: GroupInfoPatch) => Effect.Effect<Option.Option<Group>, PortError>
  /** Makes a member (not the owner) an admin or a plain member; false when there is no such member. */
  readonly setRole: (id: GroupId, user: UserId, role: "admin" | "member") => Effect.Effect<boolean, PortError>
  /**
   * In one step: `to` becomes the owner, `from` an admin, and the group's owner_id `to`. False,
   * changing nothing, unless `from` owns the group and `to` is another of its members.
   */
  readonly transfer: (id: GroupId, from: UserId, to: UserId) => Effect.Effect<boolean, PortError>
  /** Deletes the group, its members and its join requests in one step; answers who the members were. */
  readonly dismiss: (id: GroupId) => Effect.Effect<ReadonlyArray<UserId>, PortError>
  /**
   * Records a pending request to join, or answers the user's pending one (`created` false): a
   * user has at most one pending request per group. None when there is no such group.
   */
  readonly requestJoin: (
    request: JoinRequest
  ) => Effect.Effect<Option.Option<{ readonly request: JoinRequest; readonly created: boolean }>, PortError>
  /** The group's pending requests of users who are not members, oldest first. */
  readonly joinRequests: (id: GroupId) => Effect.Effect<ReadonlyArray<JoinRequest>, PortError>
  /** Accepts a pending request and adds its user (with `joined_at`) under the cap, in one step. */
  readonly acceptJoinRequest: (
    id: GroupId,
    request: JoinRequestId,
    joined_at: number,
    max: number
  ) => Effect.Effect<AcceptResult, PortError>
  /** Rejects a pending request; answers it, or none when there is no pending request of that id. */
  readonly rejectJoinRequest: (id: GroupId, request: JoinRequestId) => Effect.Effect<Option.Option<JoinRequest>, PortError>
}>()("@im/ports/GroupStore") {
  static readonly layerMemory = Layer.sync(GroupStore, () => {
    interface Entry {
      group: Group
      readonly members: Map<UserId, GroupMember>
    }
    const groups = new Map<GroupId, Entry>()
    const requests = new Map<JoinRequestId, JoinRequest>()
    const addTo = (id: GroupId, members: ReadonlyArray<GroupMember>) => {
      const entry = groups.get(id)
      if (entry === undefined) return []
      const added: Array<UserId> = []
      for (const member of members) {
        if (entry.members.has(member.user_id)) continue
        entry.members.set(member.user_id, member)
        added.push(member.user_id)
      }
      return added
    }
    const pendingOf = (id: GroupId, user: UserId) =>
      [...requests.values()].find((r) => r.group_id === id && r.user_id === user && r.status === "pending")
    return GroupStore.of({
      create: (group, members) =>
        Effect.sync(() => {
          if (groups.has(group.id)) return
          groups.set(group.id, { group, members: new Map() })
          addTo(group.id, members)
        }),
      get: (id) => Effect.sync(() => Option.fromNullishOr(groups.get(id)?.group)),
      members: (id) => Effect.sync(() => [...(groups.get(id)?.members.values() ?? [])]),
      role: (id, user) => Effect.sync(() => Option.fromNullishOr(groups.get(id)?.members.get(user)?.role)),
      addMembers: (id, members) => Effect.sync(() => addTo(id, members)),
      admit: (id, members, max) =>
        Effect.sync((): AdmitResult => {
          const entry = groups.get(id)
          if (entry === undefined) return { _tag: "NoGroup" }
          const fresh = new Set(members.map((m) => m.user_id).filter((user) => !entry.members.has(user)))
          if (entry.members.size + fresh.size > max) return { _tag: "Full" }
          return { _tag: "Added", added: addTo(id, members) }
        }),
      removeMember: (id, user) => Effect.sync(() => groups.get(id)?.members.delete(user) ?? false),
      groupsOf: (user) =>
        Effect.sync(() => [...groups.values()].filter((entry) => entry.members.has(user)).map((entry) => entry.group)),
      update: (id, patch) =>
        Effect.sync(() => {
          const entry = groups.get(id)
          if (entry === undefined) return Option.none()
          const { announcement, avatar, ...rest } = entry.group
          const nextAvatar = patch.avatar === undefined ? avatar : (patch.avatar ?? undefined)
          const nextAnnouncement = patch.announcement === undefined ? announcement : (patch.announcement ?? undefined)
          const next: Group = {
            ...rest,
            ...(patch.name === undefined ? {} : { name: patch.name }),
            ...(patch.join_approval === undefined ? {} : { join_approval: patch.join_approval }),
            ...(nextAvatar === undefined ? {} : { avatar: nextAvatar }),
            ...(nextAnnouncement === undefined ? {} : { announcement: nextAnnouncement })
          }
          entry.group = next
          return Option.some(next)
        }),
      setRole: (id, user, role) =>
        Effect.sync(() => {
          const member = groups.get(id)?.members.get(user)
          if (member === undefined || member.role === "owner") return false
          groups.get(id)!.members.set(user, { ...member, role })
          return true
        }),
      transfer: (id, from, to) =>
        Effect.sync(() => {
          const entry = groups.get(id)
          const target = entry?.members.get(to)
          const owner = entry?.members.get(from)
          if (entry === undefined || target === undefined || owner === undefined || from === to) return false
          if (entry.group.owner_id !== from || owner.role !== "owner") return false
          entry.members.set(to, { ...target, role: "owner" })
          entry.members.set(from, { ...owner, role: "admin" })
          entry.group = { ...entry.group, owner_id: to }
          return true
        }),
      dismiss: (id) =>
        Effect.sync(() => {
          const entry = groups.get(id)
          if (entry === undefined) return []
          groups.delete(id)
          for (const [key, request] of requests) if (request.group_id === id) requests.delete(key)
          return [...entry.members.keys()]
        }),
      requestJoin: (request) =>
        Effect.sync(() => {
          if (!groups.has(request.group_id)) return Option.none()
          const pending = pendingOf(request.group_id, request.user_id)
          if (pending !== undefined) return Option.some({ request: pending, created: false })
          const stored: JoinRequest = { ...request, status: "pending" }
          requests.set(stored.id, stored)
          return Option.some({ request: stored, created: true })
        }),
      joinRequests: (id) =>
        Effect.sync(() => {
          const members = groups.get(id)?.members
          return [...requests.values()]
            .filter((r) => r.group_id === id && r.status === "pending" && members?.has(r.user_id) === false)
            .sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        }),
      acceptJoinRequest: (id, requestId, joined_at, max) =>
        Effect.sync((): AcceptResult => {
          const request = requests.get(requestId)
          const entry = groups.get(id)
          if (request === undefined || entry === undefined || request.group_id !== id || request.status !== "pending") {
            return { _tag: "NotPending" }
          }
          const already = entry.members.has(request.user_id)
          if (!already && entry.members.size + 1 > max) return { _tag: "Full" }
          const accepted: JoinRequest = { ...request, status: "accepted" }
          requests.set(requestId, accepted)
          if (!already) entry.members.set(request.user_id, { user_id: request.user_id, role: "member", joined_at })
          return { _tag: "Accepted", request: accepted, added: !already }
        }),
      rejectJoinRequest: (id, requestId) =>
        Effect.sync(() => {
          const request = requests.get(requestId)
          if (request === undefined || request.group_id !== id || request.status !== "pending") return Option.none()
          const rejected: JoinRequest = { ...request, status: "rejected" }
          requests.set(requestId, rejected)
          return Option.some(rejected)
        })
    })
  })
}
