import { Schema } from "effect"
import { SendErrorCode } from "./Frames.ts"

/** A send the chat service refused; `code` is what the client sees in its `send_result`. */
export class SendRejected extends Schema.TaggedError<SendRejected>()("SendRejected", {
  code: SendErrorCode,
  message: Schema.String
}) {}

export class AccountTaken extends Schema.TaggedError<AccountTaken>()("AccountTaken", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

export class InvalidCredentials extends Schema.TaggedError<InvalidCredentials>()("InvalidCredentials", {
  message: Schema.String
}, { httpApiStatus: 401 }) {}

export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}, { httpApiStatus: 401 }) {}

export class InvalidRange extends Schema.TaggedError<InvalidRange>()("InvalidRange", {
  message: Schema.String
}, { httpApiStatus: 400 }) {}

/** A store or a downstream service could not do it now; the caller may retry. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", {
  message: Schema.String
}, { httpApiStatus: 503 }) {}

/** No such group, or the caller is not in it (the answer does not say which). */
export class GroupNotFound extends Schema.TaggedError<GroupNotFound>()("GroupNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** The caller's role in the group does not allow it. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  message: Schema.String
}, { httpApiStatus: 403 }) {}

/** Joining a group the caller is already a member of; nothing changed. */
export class AlreadyMember extends Schema.TaggedError<AlreadyMember>()("AlreadyMember", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

/** No pending join request of that id in the group (never made, or already accepted or rejected). */
export class JoinRequestNotFound extends Schema.TaggedError<JoinRequestNotFound>()("JoinRequestNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** Some of the given user ids belong to no user; nothing was changed. */
export class UnknownUsers extends Schema.TaggedError<UnknownUsers>()("UnknownUsers", {
  message: Schema.String,
  user_ids: Schema.Array(Schema.String)
}, { httpApiStatus: 400 }) {}

export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** The email belongs to another user (emails compare case-insensitively); nothing was changed. */
export class EmailTaken extends Schema.TaggedError<EmailTaken>()("EmailTaken", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

/** No such file, or the caller may not see it (the answer does not say which). */
export class FileNotFound extends Schema.TaggedError<FileNotFound>()("FileNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** A file announced larger than the server accepts (`FILE_MAX_BYTES`); nothing was recorded. */
export class FileTooLarge extends Schema.TaggedError<FileTooLarge>()("FileTooLarge", {
  message: Schema.String,
  max_bytes: Schema.Int
}, { httpApiStatus: 400 }) {}

// Friends ------------------------------------------------------------------------------------

/** A friend request or a block naming the caller themselves. */
export class CannotFriendSelf extends Schema.TaggedError<CannotFriendSelf>()("CannotFriendSelf", {
  message: Schema.String
}, { httpApiStatus: 400 }) {}

export class AlreadyFriends extends Schema.TaggedError<AlreadyFriends>()("AlreadyFriends", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

/** The other user already asked the caller: accept (or reject) their request `request_id`. */
export class FriendRequestPending extends Schema.TaggedError<FriendRequestPending>()("FriendRequestPending", {
  message: Schema.String,
  request_id: Schema.String
}, { httpApiStatus: 409 }) {}

/** The caller has blocked the user they ask to be friends with: unblock first. */
export class UserBlocked extends Schema.TaggedError<UserBlocked>()("UserBlocked", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

/** No such friend request addressed to the caller (the answer does not say which). */
export class FriendRequestNotFound extends Schema.TaggedError<FriendRequestNotFound>()("FriendRequestNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** The friend request was answered already; `status` says how. */
export class FriendRequestNotPending extends Schema.TaggedError<FriendRequestNotPending>()("FriendRequestNotPending", {
  message: Schema.String,
  status: Schema.String
}, { httpApiStatus: 409 }) {}

export class NotFriends extends Schema.TaggedError<NotFriends>()("NotFriends", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** Unblocking a user the caller has not blocked. */
export class NotBlocked extends Schema.TaggedError<NotBlocked>()("NotBlocked", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** A request that passed the schema but makes no sense (the message says why); nothing changed. */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>()("InvalidRequest", {
  message: Schema.String
}, { httpApiStatus: 400 }) {}

/** The caller has no such conversation (no entry of it in their inbox). */
export class ConversationNotFound extends Schema.TaggedError<ConversationNotFound>()("ConversationNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** No such message sent by the caller (recall is the sender's alone). */
export class MessageNotFound extends Schema.TaggedError<MessageNotFound>()("MessageNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

/** The message is older than the recall window. */
export class RecallWindowPassed extends Schema.TaggedError<RecallWindowPassed>()("RecallWindowPassed", {
  message: Schema.String,
  window_ms: Schema.Int
}, { httpApiStatus: 409 }) {}
