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
  readonly created_at: number
}

export interface RegisterRequest {
  readonly account: string
  readonly password: string
  readonly name: string
}

export interface LoginAnswer {
  readonly token: string
  readonly expires_at: number
  readonly user: User
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

/** The body of every HTTP error answer. */
export interface ErrorBody {
  readonly _tag: string
  readonly message: string
}

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

export type ClientFrame = SendFrame | PingFrame

// Server → client -----------------------------------------------------------------------------

export type SendErrorCode =
  | "invalid_frame"
  | "forbidden_sender"
  | "receiver_not_found"
  | "not_group_member"
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
  readonly code: "invalid_frame"
  readonly message: string
}

export type ServerFrame = WelcomeFrame | MessageFrame | SendOkFrame | SendFailedFrame | PongFrame | ErrorFrame

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

export const isPullPage = (u: unknown): u is PullPage =>
  isObject(u) &&
  Array.isArray(u["entries"]) &&
  u["entries"].every(isInboxEntry) &&
  isSeq(u["through"]) &&
  typeof u["has_more"] === "boolean"

export const isNewestAnswer = (u: unknown): u is NewestAnswer => isObject(u) && isSeq(u["seq"])

export const isErrorBody = (u: unknown): u is ErrorBody =>
  isObject(u) && isString(u["_tag"]) && isString(u["message"])

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
    case "error":
      return isString(u["code"]) && isString(u["message"])
    default:
      return false
  }
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
