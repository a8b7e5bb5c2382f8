import { Schema } from "effect"
import { GroupId, UserId } from "./Ids.ts"
import { Millis } from "./Message.ts"

export const GroupRole = Schema.Literals(["owner", "admin", "member"])
export type GroupRole = typeof GroupRole.Type

export const GroupName = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty({ message: "name must not be empty" }), Schema.isMaxLength(64))
)

export const Group = Schema.Struct({
  id: GroupId,
  name: GroupName,
  owner_id: UserId,
  created_at: Millis
})
export type Group = typeof Group.Type

export const GroupMember = Schema.Struct({
  user_id: UserId,
  role: GroupRole,
  joined_at: Millis
})
export type GroupMember = typeof GroupMember.Type

/** Most members a group may have. */
export const MAX_GROUP_MEMBERS = 2_000
