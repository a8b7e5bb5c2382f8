import { Schema } from "effect"
import { GroupId, UserId } from "./Ids.ts"
import { Millis } from "./Message.ts"

export const GroupRole = Schema.Literals(["owner", "admin", "member"])
export type GroupRole = typeof GroupRole.Type

export const GroupName = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty({ message: "name must not be empty" }), Schema.isMaxLength(64))
)

/** A reference to the group's picture (a URL or a file id), at most 1,024 characters. */
export const GroupAvatar = Schema.String.pipe(Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(1_024)))

/** The group's pinned notice to its members, at most 2,000 characters. */
export const GroupAnnouncement = Schema.String.pipe(Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(2_000)))

export const Group = Schema.Struct({
  id: GroupId,
  name: GroupName,
  owner_id: UserId,
  created_at: Millis,
  avatar: Schema.optionalKey(GroupAvatar),
  announcement: Schema.optionalKey(GroupAnnouncement),
  /** When set, joining by id makes a request that an owner or admin accepts or rejects. */
  join_approval: Schema.Boolean
})
export type Group = typeof Group.Type

export const GroupMember = Schema.Struct({
  user_id: UserId,
  role: GroupRole,
  joined_at: Millis
})
export type GroupMember = typeof GroupMember.Type

/** `PATCH /groups/{id}`: a field left out stays as it is; `null` removes an avatar or announcement. */
export const GroupInfoPatch = Schema.Struct({
  name: Schema.optionalKey(GroupName),
  avatar: Schema.optionalKey(Schema.NullOr(GroupAvatar)),
  announcement: Schema.optionalKey(Schema.NullOr(GroupAnnouncement)),
  join_approval: Schema.optionalKey(Schema.Boolean)
})
export type GroupInfoPatch = typeof GroupInfoPatch.Type

/** Most members a group may have. */
export const MAX_GROUP_MEMBERS = 2_000

/** A join request's id, chosen by the server. */
export const JoinRequestId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("JoinRequestId")
)
export type JoinRequestId = typeof JoinRequestId.Type

export const JoinRequestStatus = Schema.Literals(["pending", "accepted", "rejected"])
export type JoinRequestStatus = typeof JoinRequestStatus.Type

/** What a user may say when asking to join, at most 200 characters. */
export const JoinMessage = Schema.String.pipe(Schema.check(Schema.isMaxLength(200)))

/** A user's request to join a group that needs approval. */
export const JoinRequest = Schema.Struct({
  id: JoinRequestId,
  group_id: GroupId,
  user_id: UserId,
  message: Schema.optionalKey(JoinMessage),
  status: JoinRequestStatus,
  created_at: Millis
})
export type JoinRequest = typeof JoinRequest.Type

/** `POST /groups/{id}/join`: a member at once, or a pending request. */
export const JoinAnswer = Schema.Struct({
  status: Schema.Literals(["joined", "pending"]),
  /** Set when `pending`. */
  request: Schema.optionalKey(JoinRequest)
})
export type JoinAnswer = typeof JoinAnswer.Type
