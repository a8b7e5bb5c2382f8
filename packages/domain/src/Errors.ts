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

/** Some of the given user ids belong to no user; nothing was changed. */
export class UnknownUsers extends Schema.TaggedError<UnknownUsers>()("UnknownUsers", {
  message: Schema.String,
  user_ids: Schema.Array(Schema.String)
}, { httpApiStatus: 400 }) {}

export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}
