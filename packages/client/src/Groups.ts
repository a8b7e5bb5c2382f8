/**
 * The wire format of groups (docs/protocol.md, "Groups"): what the group routes answer, and the
 * events of the notices about a group. Shape checks only, as in Wire.ts.
 */

export type GroupRole = "owner" | "admin" | "member"

export interface Group {
  readonly id: string
  readonly name: string
  readonly owner_id: string
  readonly created_at: number
  readonly avatar?: string
  readonly announcement?: string
  /** Joining by id makes a request that an owner or admin decides. */
  readonly join_approval: boolean
}

export interface GroupMember {
  readonly user_id: string
  readonly role: GroupRole
  readonly joined_at: number
}

/** `PATCH /groups/{id}`: what to change; `null` removes the avatar or announcement. */
export interface GroupInfoPatch {
  readonly name?: string
  readonly avatar?: string | null
  readonly announcement?: string | null
  readonly join_approval?: boolean
}

export interface JoinRequest {
  readonly id: string
  readonly group_id: string
  readonly user_id: string
  readonly message?: string
  readonly status: "pending" | "accepted" | "rejected"
  readonly created_at: number
}

/** `POST /groups/{id}/join`: a member at once, or a pending request. */
export type JoinAnswer =
  | { readonly status: "joined" }
  | { readonly status: "pending"; readonly request: JoinRequest }

/**
 * The event of a notice about a group (its `content`, parsed; the notice's `group_id` names the
 * group and its `sender_id` who acted).
 */
export type GroupEvent =
  | { readonly type: "group_created"; readonly name: string; readonly owner_id: string }
  | { readonly type: "member_joined"; readonly user_ids: ReadonlyArray<string>; readonly how: "invited" | "joined" | "approved" }
  | { readonly type: "member_left"; readonly user_id: string }
  | { readonly type: "member_removed"; readonly user_id: string }
  | { readonly type: "role_changed"; readonly user_id: string; readonly role: "admin" | "member" }
  | { readonly type: "owner_transferred"; readonly old_owner_id: string; readonly owner_id: string }
  | { readonly type: "group_updated"; readonly changes: GroupInfoPatch }
  | { readonly type: "group_dismissed" }
  | { readonly type: "join_requested"; readonly request_id: string; readonly user_id: string; readonly message?: string }
  | { readonly type: "join_rejected"; readonly request_id: string }

type Json = Record<string, unknown>
const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)
const isString = (u: unknown): u is string => typeof u === "string"
const isTime = (u: unknown): u is number => Number.isSafeInteger(u) && (u as number) >= 0

export const isGroup = (u: unknown): u is Group =>
  isObject(u) && isString(u["id"]) && isString(u["name"]) && isString(u["owner_id"]) && isTime(u["created_at"]) &&
  typeof u["join_approval"] === "boolean"

export const isGroupMember = (u: unknown): u is GroupMember =>
  isObject(u) && isString(u["user_id"]) && (u["role"] === "owner" || u["role"] === "admin" || u["role"] === "member") &&
  isTime(u["joined_at"])

export const isJoinRequest = (u: unknown): u is JoinRequest =>
  isObject(u) && isString(u["id"]) && isString(u["group_id"]) && isString(u["user_id"]) &&
  (u["status"] === "pending" || u["status"] === "accepted" || u["status"] === "rejected") && isTime(u["created_at"])

export const isJoinAnswer = (u: unknown): u is JoinAnswer =>
  isObject(u) && (u["status"] === "joined" || (u["status"] === "pending" && isJoinRequest(u["request"])))

export const isArrayOf = <A>(guard: (u: unknown) => u is A) => (u: unknown): u is ReadonlyArray<A> =>
  Array.isArray(u) && u.every(guard)

const groupEventTypes: ReadonlySet<unknown> = new Set<GroupEvent["type"]>([
  "group_created",
  "member_joined",
  "member_left",
  "member_removed",
  "role_changed",
  "owner_transferred",
  "group_updated",
  "group_dismissed",
  "join_requested",
  "join_rejected"
])

/** The group event a notice carries, or undefined for any other message. */
export const groupEventOf = (
  message: { readonly kind: string; readonly content: string; readonly group_id?: string }
): GroupEvent | undefined => {
  if (message.kind !== "notice" || message.group_id === undefined) return undefined
  try {
    const event: unknown = JSON.parse(message.content)
    return isObject(event) && groupEventTypes.has(event["type"]) ? event as GroupEvent : undefined
  } catch {
    return undefined
  }
}
