import { Schema } from "effect"
import { GroupId, LocalId, Seq, ServerId, UserId } from "./Ids.ts"

/**
 * What a message is: a one-to-one or group chat message, or a `notice` the server sends about
 * an event (a friend request, a member joining a group, a recall, …) to the users it concerns.
 */
export const MessageKind = Schema.Literals(["single", "group", "notice"])
export type MessageKind = typeof MessageKind.Type

/** What a client may send. */
export const ContentType = Schema.Literals(["text", "image", "file", "voice", "video"])
export type ContentType = typeof ContentType.Type

/** What a stored message may hold: a notice's content is its event as JSON (see Notice.ts). */
export const StoredContentType = Schema.Literals(["text", "image", "file", "voice", "video", "notice"])
export type StoredContentType = typeof StoredContentType.Type

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
  /** The receiving group for `group`; for a `notice`, the group it is about, if any. */
  group_id: Schema.optionalKey(GroupId),
  /**
   * A notice's recipients, on the bus only: the consumer gives each of them an entry and drops
   * the list before storing, so nobody learns who else was told.
   */
  to: Schema.optionalKey(Schema.Array(UserId)),
  content_type: StoredContentType,
  content: Content,
  /** When the client created it (client clock). */
  create_time: Millis,
  /** When the chat service accepted it (server clock). */
  send_time: Millis,
  /** Set once the sender recalled it: its content is then empty. */
  recalled: Schema.optionalKey(Schema.Literal(true))
})
export type Message = typeof Message.Type

/** One entry of a user's inbox: a message under that user's next sequence number. */
export const InboxEntry = Schema.Struct({
  seq: Seq,
  message: Message
})
export type InboxEntry = typeof InboxEntry.Type

/** The key that orders a conversation on the bus: both directions of a 1:1 chat share it. */
export const conversationKey = (message: Pick<Message, "kind" | "sender_id" | "receiver_id" | "group_id" | "to">): string => {
  if (message.group_id !== undefined) return `g:${message.group_id}`
  // A notice to one other user, or to one other user and its sender (a recall, a friend request),
  // is ordered with that pair's chat; one to the sender alone with the sender's own chat; one to
  // many with its sender's other notices.
  const peer = message.kind === "notice" ? noticePeer(message.sender_id, message.to ?? []) : message.receiver_id!
  if (peer === undefined) return `n:${message.sender_id}`
  return message.sender_id < peer ? `u:${message.sender_id}:${peer}` : `u:${peer}:${message.sender_id}`
}

const noticePeer = (sender: UserId, to: ReadonlyArray<UserId>): UserId | undefined => {
  const others = new Set(to.filter((user) => user !== sender))
  if (others.size === 1) return others.values().next().value
  return others.size === 0 && to.length > 0 ? sender : undefined
}

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

/** The bus topic of one-to-one messages and of notices to one user: see {@link busTopicOf}. */
export const MESSAGES_TOPIC = "im.messages"

/** The bus topic of group messages and of notices to many users: see {@link busTopicOf}. */
export const FANOUT_TOPIC = "im.fanout"

/**
 * The topic a message is published to, from its bus key (conversationKey): a conversation stays
 * on one topic, so its order is kept. A message to a group is one inbox entry per member, and a
 * group that sends faster than its fan-out is stored fills its partitions for as long as it
 * keeps on; on a topic of their own, with the consumer's own group and call slot for it, such
 * backlogs hold only other fan-outs, never a one-to-one chat.
 */
export const busTopicOf = (key: string): string => key.startsWith("u:") ? MESSAGES_TOPIC : FANOUT_TOPIC
