import { Schema } from "effect"
import { GroupId, LocalId, Seq, ServerId, UserId } from "./Ids.ts"

/** What a message is for: a chat message, or one of the notification kinds later features add. */
export const MessageKind = Schema.Literals(["single", "group"])
export type MessageKind = typeof MessageKind.Type

export const ContentType = Schema.Literals(["text", "image", "file", "voice", "video"])
export type ContentType = typeof ContentType.Type

/** Milliseconds since the Unix epoch. */
export const Millis = Schema.Int.pipe(Schema.check(Schema.isGreaterThanOrEqualTo(0)))

/** Longest content of one message, in UTF-16 code units. */
export const MAX_CONTENT_LENGTH = 16_384

export const Content = Schema.String.pipe(Schema.check(Schema.isMaxLength(MAX_CONTENT_LENGTH)))

/**
 * A message as stored and delivered. Field names are the wire names (snake_case), so the same
 * schema serves the bus, the stores, the HTTP API and the WebSocket frames.
 */
export const Message = Schema.Struct({
  server_id: ServerId,
  local_id: LocalId,
  sender_id: UserId,
  kind: MessageKind,
  /** The receiving user for `single`; unset for `group`. */
  receiver_id: Schema.optionalKey(UserId),
  /** The receiving group for `group`; unset for `single`. */
  group_id: Schema.optionalKey(GroupId),
  content_type: ContentType,
  content: Content,
  /** When the client created it (client clock). */
  create_time: Millis,
  /** When the chat service accepted it (server clock). */
  send_time: Millis
})
export type Message = typeof Message.Type

/** One entry of a user's inbox: a message under that user's next sequence number. */
export const InboxEntry = Schema.Struct({
  seq: Seq,
  message: Message
})
export type InboxEntry = typeof InboxEntry.Type

/** The key that orders a conversation on the bus: both directions of a 1:1 chat share it. */
export const conversationKey = (message: Pick<Message, "kind" | "sender_id" | "receiver_id" | "group_id">): string =>
  message.kind === "group"
    ? `g:${message.group_id}`
    : message.sender_id < message.receiver_id!
    ? `u:${message.sender_id}:${message.receiver_id}`
    : `u:${message.receiver_id}:${message.sender_id}`

/** Everyone whose inbox gets an entry for a one-to-one message: the receiver and the sender. */
export const singleParticipants = (message: Message): ReadonlyArray<UserId> =>
  message.receiver_id === undefined || message.receiver_id === message.sender_id
    ? [message.sender_id]
    : [message.receiver_id, message.sender_id]

/** An inbox entry addressed to its user: what the consumer stores and the pusher delivers. */
export interface Delivery extends InboxEntry {
  readonly user_id: typeof UserId.Type
}

/** The answer to a pull: see docs/protocol.md. */
export const PullPage = Schema.Struct({
  entries: Schema.Array(InboxEntry),
  /** Every number in (after, through] is settled: returned, or skipped for good. */
  through: Seq,
  has_more: Schema.Boolean
})
export type PullPage = typeof PullPage.Type

export const MAX_PULL_LIMIT = 1000

/** The bus topic every accepted message is published to. */
export const MESSAGES_TOPIC = "im.messages"
