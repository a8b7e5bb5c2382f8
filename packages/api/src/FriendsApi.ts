import {
  AlreadyFriends,
  CannotFriendSelf,
  FriendRequestNotFound,
  FriendRequestNotPending,
  FriendRequestPending,
  NotBlocked,
  NotFriends,
  ServiceUnavailable,
  UserBlocked,
  UserNotFound
} from "@im/domain/Errors"
import { ContactChanges, FriendRequest, FriendRequestId, FriendRequestMessage, FriendRequests } from "@im/domain/Friend"
import { UserId } from "@im/domain/Ids"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"

const VersionParam = Schema.NumberFromString.pipe(Schema.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)))

/**
 * Friends: requests and their answers, the contact list with incremental sync, blocking. Every
 * event reaches the other party as a notice in their inbox (docs/protocol.md, "Friends").
 * `ImApi` adds the bearer Authorization to the whole group.
 */
export class FriendsApi extends HttpApiGroup.make("friends")
  .add(
    HttpApiEndpoint.post("request", "/requests", {
      payload: Schema.Struct({ user_id: UserId, message: Schema.optionalKey(FriendRequestMessage) }),
      success: FriendRequest.pipe(HttpApiSchema.status(201)),
      error: [CannotFriendSelf, UserNotFound, AlreadyFriends, FriendRequestPending, UserBlocked, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Ask a user to be friends, with an optional message (at most 256 characters). Asking again while the request is " +
        "pending answers the same request. 409 FriendRequestPending (with request_id) when they already asked you: " +
        "accept theirs. A request to someone who blocked you is answered as sent, but they never see it."
    ),
    HttpApiEndpoint.get("requests", "/requests", {
      success: FriendRequests,
      error: ServiceUnavailable
    }).annotate(OpenApi.Description, "The caller's pending requests, oldest first: incoming (asking the caller) and outgoing."),
    HttpApiEndpoint.post("accept", "/requests/:request_id/accept", {
      params: { request_id: FriendRequestId },
      success: FriendRequest,
      error: [FriendRequestNotFound, FriendRequestNotPending, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Accept a pending request addressed to the caller: both become friends. Anyone else, the requester included, gets 404; " +
        "an answered request 409."
    ),
    HttpApiEndpoint.post("reject", "/requests/:request_id/reject", {
      params: { request_id: FriendRequestId },
      success: FriendRequest,
      error: [FriendRequestNotFound, FriendRequestNotPending, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Reject a pending request addressed to the caller. Anyone else, the requester included, gets 404; an answered request 409."
    ),
    HttpApiEndpoint.get("list", "/", {
      query: { since: Schema.optional(VersionParam) },
      success: ContactChanges,
      error: ServiceUnavailable
    }).annotate(
      OpenApi.Description,
      "The caller's contact list (friends, and users they blocked) at its current version. With since=V (V > 0), only the " +
        "entries changed after version V, removals as tombstones (removed: true); full: true when the answer is the whole " +
        "list instead (since absent or 0, or above the current version)."
    ),
    HttpApiEndpoint.delete("remove", "/:user_id", {
      params: { user_id: UserId },
      success: HttpApiSchema.NoContent,
      error: [NotFriends, ServiceUnavailable]
    }).annotate(OpenApi.Description, "End a friendship, both ways. 404 when not friends."),
    HttpApiEndpoint.post("block", "/:user_id/block", {
      params: { user_id: UserId },
      success: HttpApiSchema.NoContent,
      error: [CannotFriendSelf, UserNotFound, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Block a user: ends a friendship, withdraws the caller's request to them, and refuses their requests and their " +
        "one-to-one messages. They are told only what a deletion would tell them. Blocking again changes nothing."
    ),
    HttpApiEndpoint.delete("unblock", "/:user_id/block", {
      params: { user_id: UserId },
      success: HttpApiSchema.NoContent,
      error: [NotBlocked, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Unblock a user: they leave the caller's list (they are not friends again), and requests they sent while blocked are dropped."
    )
  )
  .prefix("/friends")
  .annotateMerge(OpenApi.annotations({ title: "Friends" }))
{}
