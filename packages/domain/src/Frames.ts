import { Schema } from "effect"
import { GroupId, LocalId, ServerId, UserId } from "./Ids.ts"
import { Content, ContentType, InboxEntry, Millis } from "./Message.ts"

// Client → server ---------------------------------------------------------------------------

/**
 * Send a message. The sender is the authenticated user: a `sender_id`, if given, must be that
 * user. Exactly one of `receiver_id` and `group_id` is set.
 */
export const SendFrame = Schema.Struct({
  type: Schema.Literal("send"),
  local_id: LocalId,
  receiver_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId),
  sender_id: Schema.optionalKey(Schema.String),
  content_type: ContentType,
  content: Content,
  create_time: Millis
})
export type SendFrame = typeof SendFrame.Type

export const PingFrame = Schema.Struct({ type: Schema.Literal("ping") })

/**
 * The user is typing to a peer or in a group (exactly one of the two): passed on live to those
 * connected, never stored, no seq spent, no answer. Sent more than once a second per target,
 * the extra ones are dropped.
 */
export const TypingFrame = Schema.Struct({
  type: Schema.Literal("typing"),
  receiver_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId)
})
export type TypingFrame = typeof TypingFrame.Type

export const ClientFrame = Schema.Union([SendFrame, PingFrame, TypingFrame])
export type ClientFrame = typeof ClientFrame.Type

// Server → client ---------------------------------------------------------------------------

/** Codes a send can fail with (the `error.code` of a failed `send_result`). */
export const SendErrorCode = Schema.Literals([
  "invalid_frame",
  "forbidden_sender",
  "receiver_not_found",
  "not_group_member",
  /** A one-to-one message to a user who blocked the sender. */
  "blocked",
  /** An image, file, voice or video message whose content names no file the sender uploaded, or names it wrongly. */
  "invalid_file",
  "unsupported",
  "unavailable"
])
export type SendErrorCode = typeof SendErrorCode.Type

export const ErrorBody = Schema.Struct({ code: Schema.String, message: Schema.String })

export const SendOk = Schema.Struct({
  type: Schema.Literal("send_result"),
  ok: Schema.Literal(true),
  local_id: LocalId,
  server_id: ServerId,
  send_time: Millis
})

export const SendFailed = Schema.Struct({
  type: Schema.Literal("send_result"),
  ok: Schema.Literal(false),
  local_id: Schema.String,
  error: Schema.Struct({ code: SendErrorCode, message: Schema.String })
})

/** Sent once the session is registered: from here on, every stored message for the user is pushed. */
export const WelcomeFrame = Schema.Struct({
  type: Schema.Literal("welcome"),
  user_id: UserId,
  /** The server closes a connection silent for this long; ping well within it. */
  heartbeat_timeout_ms: Schema.Int
})

/** A pushed inbox entry. */
export const MessageFrame = Schema.Struct({
  type: Schema.Literal("message"),
  ...InboxEntry.fields
})

export const PongFrame = Schema.Struct({ type: Schema.Literal("pong") })

/**
 * A frame that could not be understood (`invalid_frame`), or a refused typing frame (the send
 * error code that applies): nothing was changed.
 */
export const ErrorFrame = Schema.Struct({
  type: Schema.Literal("error"),
  code: SendErrorCode,
  message: Schema.String
})

/** Someone is typing to the receiving user (`receiver_id` is that user) or in one of its groups. */
export const TypingSignal = Schema.Struct({
  type: Schema.Literal("typing"),
  sender_id: UserId,
  receiver_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId)
})

export const ServerFrame = Schema.Union([SendOk, SendFailed, WelcomeFrame, MessageFrame, PongFrame, ErrorFrame, TypingSignal])
export type ServerFrame = typeof ServerFrame.Type

/** WebSocket close codes the server uses. */
export const CloseCodes = {
  /** Server shutting down; reconnect. */
  goingAway: 1001,
  /** A frame larger than the limit. */
  frameTooLarge: 1009,
  /** The server could not check the token now (its session store is unavailable); reconnect later. */
  tryAgainLater: 1013,
  /** Missing, invalid, expired or revoked token; the reason says which. Refresh it, or log in again. */
  unauthorized: 4001,
  /** Nothing received within the heartbeat timeout. */
  heartbeatTimeout: 4008,
  /** The server ended the session (e.g. the user logged out); the reason says why. */
  kicked: 4009
} as const
