import type { Group, GroupMember, GroupRole } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { Context, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/** Groups and their members. */
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
  /** Returns whether the user was a member. */
  readonly removeMember: (id: GroupId, user: UserId) => Effect.Effect<boolean, PortError>
  /** The groups the user is a member of. */
  readonly groupsOf: (user: UserId) => Effect.Effect<ReadonlyArray<Group>, PortError>
}>()("@im/ports/GroupStore") {
  static readonly layerMemory = Layer.sync(GroupStore, () => {
    const groups = new Map<GroupId, { readonly group: Group; readonly members: Map<UserId, GroupMember> }>()
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
      removeMember: (id, user) => Effect.sync(() => groups.get(id)?.members.delete(user) ?? false),
      groupsOf: (user) =>
        Effect.sync(() => [...groups.values()].filter((entry) => entry.members.has(user)).map((entry) => entry.group))
    })
  })
}
