/**
 * The wire format of docs/protocol.md, declared for the SDK alone: `@im/domain` holds the
 * server's schemas but pulls in Effect, which a browser SDK should not carry.
 *
 * The decoders check shape only, enough to keep a malformed frame from corrupting the local
 * store; the server is the one that validates content.
 */

// Messages ------------------------------------------------------------------------------------

export type MessageKind = "single" | "group" | "notice"

export type ContentType = "text" | "image" | "file" | "voice" | "video"

/** A notice's content is its event as JSON, `{"type": …}`: see docs/protocol.md, "Notices". */
export type StoredContentType = ContentType | "notice"

/** Longest content of one message, in UTF-16 code units. */
export const MAX_CONTENT_LENGTH = 16_384

export interface Message {
  readonly server_id: string
  /** The sender's id of the message, unique per sender: the key of idempotent send. */
  readonly local_id: string
  readonly sender_id: string
  readonly kind: MessageKind
  readonly receiver_id?: string
  readonly group_id?: string
  readonly content_type: StoredContentType
  readonly content: string
  /** The sending client's clock, ms since the epoch. */
  readonly create_time: number
  /** The server's clock when it accepted the message. */
  readonly send_time: number
  /** Set once the sender recalled it; `content` is then empty. */
  readonly recalled?: true
}

/** One entry of a user's inbox: a message under one number of the user's sequence. */
export interface InboxEntry {
  readonly seq: number
  readonly message: Message
}

// HTTP ----------------------------------------------------------------------------------------

export interface User {
  readonly id: string
  readonly account: string
  readonly name: string
  /** A URL or a stored file's reference. */
  readonly avatar?: string
  readonly created_at: number
}

/** The user as they see themselves (`GET /users/me`, login): with their private email. */
export interface Profile extends User {
  readonly email?: string
}

export interface RegisterRequest {
  readonly account: string
  readonly password: string
  readonly name: string
  /** Private; unique case-insensitively (else `EmailTaken`). */
  readonly email?: string
}

/** What login and `POST /auth/refresh` answer: the access token and the refresh token that gets the next pair. */
export interface TokenPair {
  readonly token: string
  /** ms since the epoch. */
  readonly expires_at: number
  readonly refresh_token: string
  readonly refresh_expires_at: number
}

export interface LoginAnswer extends TokenPair {
  readonly user: Profile
  /** The WebSocket to connect to, when the server has gateways of its own (the cluster). */
  readonly ws_url?: string
}

/** `GET /inbox/newest`. */
export interface NewestAnswer {
  readonly seq: number
}

/** `GET /inbox?after=A&limit=L[&until=U]`: every number in `(after, through]` is settled. */
export interface PullPage {
  readonly entries: ReadonlyArray<InboxEntry>
  readonly through: number
  readonly has_more: boolean
}

/** `POST /files`: where and how to upload the announced file's bytes. */
export interface UploadTicket {
  readonly file_id: string
  readonly upload_url: string
  readonly method: "PUT"
  readonly headers: Readonly<Record<string, string>>
  readonly expires_at: number
}

/** `GET /files/{file_id}`: the file and a short-lived URL to download it. */
export interface FileInfo {
  readonly file_id: string
  readonly name: string
  readonly content_type: string
  readonly size: number
  readonly download_url: string
  readonly expires_at: number
}

/**
 * What an image, file, voice or video message's `content` holds, as JSON: an uploaded file,
 * with the name, size and type it was announced with; optionally a picture's size and a clip's
 * length.
 */
export interface FileReference {
  readonly file_id: string
  readonly name: string
  readonly size: number
  readonly mime: string
  readonly width?: number
  readonly height?: number
  readonly duration_ms?: number
}

/** The body of every HTTP error answer. */
export interface ErrorBody {
  readonly _tag: string
  readonly message: string
}

// Friends -------------------------------------------------------------------------------------

export type FriendRequestStatus = "pending" | "accepted" | "rejected"

export interface FriendRequest {
  readonly id: string
  readonly from_id: string
  readonly to_id: string
  /** The requester's note ("" when none). */
  readonly message: string
  readonly status: FriendRequestStatus
  readonly created_at: number
  readonly updated_at: number
}

/** `GET /friends/requests`: the user's pending requests, oldest first. */
export interface FriendRequests {
  readonly incoming: ReadonlyArray<FriendRequest>
  readonly outgoing: ReadonlyArray<FriendRequest>
}

/** One entry of the contact list: a friend, or a user the owner blocked. */
export interface Contact {
  readonly user_id: string
  readonly state: "friend" | "blocked"
  /** The version of the list that last changed this entry. */
  readonly updated_version: number
  /** A tombstone: the entry left the list at `updated_version`. */
  readonly removed?: true
  readonly created_at: number
  readonly updated_at: number
}

/**
 * `GET /friends?since=V`: the entries changed after V (tombstones included) and the current
 * version; `full` when it is the whole list instead (replace the local copy).
 */
export interface ContactChanges {
  readonly version: number
  readonly full: boolean
  readonly friends: ReadonlyArray<Contact>
}

/** The event of a friend notice (its `content`, parsed): see docs/protocol.md, "Friends". */
export type FriendEvent =
  | { readonly type: "friend_request"; readonly request: FriendRequest; readonly user?: User }
  | { readonly type: "friend_accepted"; readonly request: FriendRequest }
  | { readonly type: "friend_rejected"; readonly request: FriendRequest }
  | { readonly type: "friend_deleted"; readonly user_id: string; readonly friend_id: string }
  | { readonly type: "friend_blocked"; readonly user_id: string }
  | { readonly type: "friend_unblocked"; readonly user_id: string }

// Client → server -----------------------------------------------------------------------------

export interface SendFrame {
  readonly type: "send"
  readonly local_id: string
  readonly receiver_id?: string
  readonly group_id?: string
  readonly content_type: ContentType
  readonly content: string
  readonly create_time: number
}

export interface PingFrame {
  readonly type: "ping"
}

/** "I am typing" to a peer or in a group: exactly one of the two. */
export interface TypingFrame {
  readonly type: "typing"
  readonly receiver_id?: string
  readonly group_id?: string
}

export type ClientFrame = SendFrame | PingFrame | TypingFrame

// Server → client -----------------------------------------------------------------------------

export type SendErrorCode =
  | "invalid_frame"
  | "forbidden_sender"
  | "receiver_not_found"
  | "not_group_member"
  | "blocked"
  | "invalid_file"
  | "unsupported"
  | "unavailable"

/** The only code worth sending again (with the same `local_id`). */
export const isRetryable = (code: SendErrorCode): boolean => code === "unavailable"

export interface WelcomeFrame {
  readonly type: "welcome"
  readonly user_id: string
  readonly heartbeat_timeout_ms: number
}

export interface MessageFrame extends InboxEntry {
  readonly type: "message"
}

export interface SendOkFrame {
  readonly type: "send_result"
  readonly ok: true
  readonly local_id: string
  readonly server_id: string
  readonly send_time: number
}

export interface SendFailedFrame {
  readonly type: "send_result"
  readonly ok: false
  readonly local_id: string
  readonly error: { readonly code: SendErrorCode; readonly message: string }
}

export interface PongFrame {
  readonly type: "pong"
}

export interface ErrorFrame {
  readonly type: "error"
  /** `invalid_frame`, or for a refused typing frame the send error code that applies. */
  readonly code: string
  readonly message: string
}

/** One of the user's conversations (`GET /conversations`). */
export interface ConversationSummary {
  /** `u:<user id>` or `g:<group id>`. */
  readonly conversation: string
  readonly user_id?: string
  readonly group_id?: string
  readonly last_seq: number
  readonly last_server_id: string
  /** Everything up to this seq of the user's inbox is read. */
  readonly read_seq: number
  /** Entries from others after `read_seq`. */
  readonly unread: number
}

/** Someone is typing to this user (`receiver_id`) or in one of its groups (`group_id`). Live only. */
export interface TypingSignal {
  readonly type: "typing"
  readonly sender_id: string
  readonly receiver_id?: string
  readonly group_id?: string
}

export type ServerFrame = WelcomeFrame | MessageFrame | SendOkFrame | SendFailedFrame | PongFrame | ErrorFrame | TypingSignal

/** WebSocket close codes the server uses. */
export const CloseCodes = {
  /** Server shutting down; reconnect later. */
  goingAway: 1001,
  /** A frame was larger than the limit. */
  frameTooLarge: 1009,
  /** Missing, invalid or expired token; log in again. */
  unauthorized: 4001,
  /** Nothing was received within the heartbeat timeout. */
  heartbeatTimeout: 4008
} as const

// Decoding ------------------------------------------------------------------------------------

type Json = Record<string, unknown>

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)
const isString = (u: unknown): u is string => typeof u === "string"
const isSeq = (u: unknown): u is number => Number.isSafeInteger(u) && (u as number) >= 0

const contentTypes: ReadonlySet<unknown> = new Set<StoredContentType>(["text", "image", "file", "voice", "video", "notice"])
const sendErrorCodes: ReadonlySet<unknown> = new Set<SendErrorCode>([
  "invalid_frame",
  "forbidden_sender",
  "receiver_not_found",
  "not_group_member",
  "blocked",
  "invalid_file",
  "unsupported",
  "unavailable"
])

export const isMessage = (u: unknown): u is Message =>
  isObject(u) &&
  isString(u["server_id"]) &&
  isString(u["local_id"]) &&
  isString(u["sender_id"]) &&
  (u["kind"] === "single" || u["kind"] === "group" || u["kind"] === "notice") &&
  (u["receiver_id"] === undefined || isString(u["receiver_id"])) &&
  (u["group_id"] === undefined || isString(u["group_id"])) &&
  contentTypes.has(u["content_type"]) &&
  isString(u["content"]) &&
  isSeq(u["create_time"]) &&
  isSeq(u["send_time"])

export const isInboxEntry = (u: unknown): u is InboxEntry =>
  isObject(u) && isSeq(u["seq"]) && isMessage(u["message"])

export const isUser = (u: unknown): u is User =>
  isObject(u) && isString(u["id"]) && isString(u["account"]) && isString(u["name"]) && isSeq(u["created_at"])

export const isPullPage = (u: unknown): u is PullPage =>
  isObject(u) &&
  Array.isArray(u["entries"]) &&
  u["entries"].every(isInboxEntry) &&
  isSeq(u["through"]) &&
  typeof u["has_more"] === "boolean"

export const isNewestAnswer = (u: unknown): u is NewestAnswer => isObject(u) && isSeq(u["seq"])

export const isTokenPair = (u: unknown): u is TokenPair =>
  isObject(u) &&
  isString(u["token"]) &&
  isString(u["refresh_token"]) &&
  Number.isSafeInteger(u["expires_at"]) &&
  Number.isSafeInteger(u["refresh_expires_at"])

export const isErrorBody = (u: unknown): u is ErrorBody =>
  isObject(u) && isString(u["_tag"]) && isString(u["message"])

export const isUploadTicket = (u: unknown): u is UploadTicket =>
  isObject(u) && isString(u["file_id"]) && isString(u["upload_url"]) && u["method"] === "PUT" &&
  isObject(u["headers"]) && Object.values(u["headers"]).every(isString) && isSeq(u["expires_at"])

export const isFileInfo = (u: unknown): u is FileInfo =>
  isObject(u) && isString(u["file_id"]) && isString(u["name"]) && isString(u["content_type"]) && isSeq(u["size"]) &&
  isString(u["download_url"]) && isSeq(u["expires_at"])

const isServerFrame = (u: unknown): u is ServerFrame => {
  if (!isObject(u)) return false
  switch (u["type"]) {
    case "welcome":
      return isString(u["user_id"]) && isSeq(u["heartbeat_timeout_ms"])
    case "message":
      return isSeq(u["seq"]) && isMessage(u["message"])
    case "send_result":
      if (!isString(u["local_id"])) return false
      if (u["ok"] === true) return isString(u["server_id"]) && isSeq(u["send_time"])
      return u["ok"] === false && isObject(u["error"]) && sendErrorCodes.has(u["error"]["code"]) &&
        isString(u["error"]["message"])
    case "pong":
      return true
    case "typing":
      return isString(u["sender_id"]) && (isString(u["receiver_id"]) || isString(u["group_id"]))
    case "error":
      return isString(u["code"]) && isString(u["message"])
    default:
      return false
  }
}

const friendEventTypes: ReadonlySet<unknown> = new Set<FriendEvent["type"]>([
  "friend_request",
  "friend_accepted",
  "friend_rejected",
  "friend_deleted",
  "friend_blocked",
  "friend_unblocked"
])

export const isFriendRequest = (u: unknown): u is FriendRequest =>
  isObject(u) && isString(u["id"]) && isString(u["from_id"]) && isString(u["to_id"]) && isString(u["message"]) &&
  (u["status"] === "pending" || u["status"] === "accepted" || u["status"] === "rejected") &&
  isSeq(u["created_at"]) && isSeq(u["updated_at"])

export const isFriendRequests = (u: unknown): u is FriendRequests =>
  isObject(u) && Array.isArray(u["incoming"]) && u["incoming"].every(isFriendRequest) &&
  Array.isArray(u["outgoing"]) && u["outgoing"].every(isFriendRequest)

export const isContactChanges = (u: unknown): u is ContactChanges =>
  isObject(u) && isSeq(u["version"]) && typeof u["full"] === "boolean" && Array.isArray(u["friends"]) &&
  u["friends"].every((c) =>
    isObject(c) && isString(c["user_id"]) && (c["state"] === "friend" || c["state"] === "blocked") &&
    isSeq(c["updated_version"]) && (c["removed"] === undefined || c["removed"] === true)
  )

/** The friend event a notice carries, or `undefined` when the message is not a friend notice. */
export const friendEventOf = (message: Message): FriendEvent | undefined => {
  if (message.kind !== "notice") return undefined
  let event: unknown
  try {
    event = JSON.parse(message.content)
  } catch {
    return undefined
  }
  return isObject(event) && friendEventTypes.has(event["type"]) ? (event as unknown as FriendEvent) : undefined
}

/** The frame in a text frame's payload, or `undefined` when it is not one this SDK knows. */
export const decodeServerFrame = (text: string): ServerFrame | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  return isServerFrame(parsed) ? parsed : undefined
}
