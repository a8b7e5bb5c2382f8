import { Schema } from "effect"
import { UserId } from "./Ids.ts"
import { Millis } from "./Message.ts"

/** A friend request's id, chosen by the server. */
export const FriendRequestId = Schema.String.pipe(
  Schema.check(Schema.isNonEmpty(), Schema.isMaxLength(64)),
  Schema.brand("FriendRequestId")
)
export type FriendRequestId = typeof FriendRequestId.Type

/** Longest note a requester may attach to a friend request, in UTF-16 code units. */
export const MAX_FRIEND_REQUEST_MESSAGE = 256

export const FriendRequestMessage = Schema.String.pipe(
  Schema.check(Schema.isMaxLength(MAX_FRIEND_REQUEST_MESSAGE, {
    message: `message must have at most ${MAX_FRIEND_REQUEST_MESSAGE} characters`
  }))
)

/** A request is answered once: `pending` until its addressee accepts or rejects it. */
export const FriendRequestStatus = Schema.Literals(["pending", "accepted", "rejected"])
export type FriendRequestStatus = typeof FriendRequestStatus.Type

export const FriendRequest = Schema.Struct({
  id: FriendRequestId,
  /** Who asked. */
  from_id: UserId,
  /** Who was asked: the only one who may accept or reject. */
  to_id: UserId,
  /** The requester's note ("" when none). */
  message: FriendRequestMessage,
  status: FriendRequestStatus,
  created_at: Millis,
  /** When the status last changed. */
  updated_at: Millis
})
export type FriendRequest = typeof FriendRequest.Type

/** The caller's pending requests, oldest first: those asking them, and those they sent. */
export const FriendRequests = Schema.Struct({
  incoming: Schema.Array(FriendRequest),
  outgoing: Schema.Array(FriendRequest)
})
export type FriendRequests = typeof FriendRequests.Type

/** `friend`: on each other's lists; `blocked`: the list's owner blocked this user. */
export const ContactState = Schema.Literals(["friend", "blocked"])
export type ContactState = typeof ContactState.Type

/** A version of a user's contact list: 0 before its first change, +1 with every change. */
export const ContactVersion = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))

/** One entry of a user's contact list, as it is at `updated_version`. */
export const Contact = Schema.Struct({
  user_id: UserId,
  state: ContactState,
  /** The version of the list that last changed this entry. */
  updated_version: ContactVersion,
  /** A tombstone: the entry left the list at `updated_version` (`state` is what it was). */
  removed: Schema.optionalKey(Schema.Literal(true)),
  /** When the entry (the friendship or the block) began. */
  created_at: Millis,
  updated_at: Millis
})
export type Contact = typeof Contact.Type

/**
 * The answer to "what changed since version V": the entries changed after V (tombstones for
 * removals) and the list's current version. `full` when it is the whole current list instead
 * (V was 0, or V was above the current version): replace the local copy.
 */
export const ContactChanges = Schema.Struct({
  version: ContactVersion,
  full: Schema.Boolean,
  friends: Schema.Array(Contact)
})
export type ContactChanges = typeof ContactChanges.Type
