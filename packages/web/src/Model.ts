/**
 * What the chat screen shows, computed from the inbox: conversations, their items (messages and
 * group events) and each own message's state. Pure functions of the SDK's data, so they are
 * tested without a browser (test/Model.test.ts).
 */
import { groupEventOf, type GroupEvent } from "@im/client/Groups"
import type { ContentType, FileReference, InboxEntry, Message } from "@im/client/Wire"

/** `u:<user id>` for a one-to-one conversation, `g:<group id>` for a group: the server's own keys. */
export type ConversationKey = `u:${string}` | `g:${string}`

export type Target = { readonly user_id: string } | { readonly group_id: string }

export const targetOf = (key: ConversationKey): Target =>
  key.startsWith("g:") ? { group_id: key.slice(2) } : { user_id: key.slice(2) }

export const userKey = (userId: string): ConversationKey => `u:${userId}`
export const groupKey = (groupId: string): ConversationKey => `g:${groupId}`

/** A send of this client not yet seen in the inbox (or refused). */
export interface PendingSend {
  readonly local_id: string
  readonly key: ConversationKey
  readonly content_type: ContentType
  /** Empty while a file is still uploading. */
  readonly content: string
  readonly create_time: number
  readonly state: "uploading" | "sending" | "sent" | "failed"
  readonly error?: string
  /** A local preview of an image being sent (an object URL). */
  readonly preview?: string
  /** The file's name while it is uploading. */
  readonly file_name?: string
}

export type MessageState = "sending" | "sent" | "failed" | "read"

export type ChatItem =
  | {
    readonly type: "message"
    /** Stable across the pending → stored change: the sender's `local_id`. */
    readonly id: string
    readonly server_id?: string
    readonly sender_id: string
    readonly mine: boolean
    readonly content_type: ContentType
    readonly content: string
    readonly time: number
    readonly recalled: boolean
    /** Own messages only. */
    readonly state?: MessageState
    /** Own messages: who has read it (from `read` notices). */
    readonly read_by?: ReadonlyArray<string>
    readonly error?: string
    readonly preview?: string
    readonly file_name?: string
  }
  | { readonly type: "event"; readonly id: string; readonly time: number; readonly sender_id: string; readonly event: GroupEvent }

/** A `read` notice: `reader_id` has read the sender's messages up to `through_send_time`. */
interface ReadEvent {
  readonly type: "read"
  readonly reader_id: string
  readonly through_server_id: string
  readonly through_send_time: number
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const readEventOf = (message: Message): ReadEvent | undefined => {
  if (message.kind !== "notice") return undefined
  const event = parseJson(message.content) as Partial<ReadEvent> | undefined
  return event?.type === "read" && typeof event.reader_id === "string" && typeof event.through_send_time === "number"
    ? (event as ReadEvent)
    : undefined
}

const recalledIdOf = (message: Message): string | undefined => {
  if (message.kind !== "notice") return undefined
  const event = parseJson(message.content) as { type?: unknown; server_id?: unknown } | undefined
  return event?.type === "message_recalled" && typeof event.server_id === "string" ? event.server_id : undefined
}

/** The conversation a message or group notice belongs to; `undefined` for other notices. */
export const conversationOf = (message: Message, me: string): ConversationKey | undefined => {
  switch (message.kind) {
    case "single": {
      const peer = message.sender_id === me ? message.receiver_id : message.sender_id
      return peer === undefined ? undefined : userKey(peer)
    }
    case "group":
      return message.group_id === undefined ? undefined : groupKey(message.group_id)
    case "notice":
      return groupEventOf(message) !== undefined && message.group_id !== undefined ? groupKey(message.group_id) : undefined
  }
}

/** A file message's reference, when its content is one. */
export const fileOf = (content: string): FileReference | undefined => {
  const file = parseJson(content) as Partial<FileReference> | undefined
  return typeof file?.file_id === "string" && typeof file.name === "string" && typeof file.size === "number"
    ? (file as FileReference)
    : undefined
}

/** What the inbox says about receipts and recalls, gathered once per render. */
export interface InboxFacts {
  /** Per conversation: reader → the send time they have read through. */
  readonly reads: ReadonlyMap<ConversationKey, ReadonlyMap<string, number>>
  readonly recalled: ReadonlySet<string>
}

export const factsOf = (entries: ReadonlyArray<InboxEntry>): InboxFacts => {
  const reads = new Map<ConversationKey, Map<string, number>>()
  const recalled = new Set<string>()
  for (const { message } of entries) {
    const read = readEventOf(message)
    if (read !== undefined) {
      const key = message.group_id !== undefined ? groupKey(message.group_id) : userKey(read.reader_id)
      const readers = reads.get(key) ?? new Map<string, number>()
      readers.set(read.reader_id, Math.max(readers.get(read.reader_id) ?? 0, read.through_send_time))
      reads.set(key, readers)
      continue
    }
    const recall = recalledIdOf(message)
    if (recall !== undefined) recalled.add(recall)
  }
  return { reads, recalled }
}

/**
 * The items of one conversation, oldest first: its stored messages and group events in inbox
 * order, then this client's sends that the inbox does not hold yet.
 */
export const itemsOf = (
  key: ConversationKey,
  entries: ReadonlyArray<InboxEntry>,
  pending: ReadonlyArray<PendingSend>,
  me: string,
  facts: InboxFacts
): Array<ChatItem> => {
  const items: Array<ChatItem> = []
  const stored = new Set<string>()
  const readers = facts.reads.get(key)
  for (const { message } of entries) {
    if (conversationOf(message, me) !== key) continue
    if (message.kind === "notice") {
      const event = groupEventOf(message)
      if (event !== undefined) {
        items.push({ type: "event", id: message.server_id, time: message.send_time, sender_id: message.sender_id, event })
      }
      continue
    }
    const mine = message.sender_id === me
    if (mine) stored.add(message.local_id)
    const readBy = mine && readers !== undefined
      ? [...readers].filter(([reader, through]) => reader !== me && through >= message.send_time).map(([reader]) => reader)
      : []
    const sendResult = pending.find((p) => p.local_id === message.local_id)
    items.push({
      type: "message",
      id: mine ? message.local_id : message.server_id,
      server_id: message.server_id,
      sender_id: message.sender_id,
      mine,
      content_type: message.content_type === "notice" ? "text" : message.content_type,
      content: message.content,
      time: message.send_time,
      recalled: message.recalled === true || facts.recalled.has(message.server_id),
      ...(mine ? { state: readBy.length > 0 ? "read" : "sent", read_by: readBy } : {}),
      ...(mine && sendResult?.preview !== undefined ? { preview: sendResult.preview } : {})
    })
  }
  for (const send of pending) {
    if (send.key !== key || stored.has(send.local_id)) continue
    items.push({
      type: "message",
      id: send.local_id,
      sender_id: me,
      mine: true,
      content_type: send.content_type,
      content: send.content,
      time: send.create_time,
      recalled: false,
      state: send.state === "uploading" ? "sending" : send.state,
      ...(send.error !== undefined ? { error: send.error } : {}),
      ...(send.preview !== undefined ? { preview: send.preview } : {}),
      ...(send.file_name !== undefined ? { file_name: send.file_name } : {})
    })
  }
  return items
}

export interface ConversationRow {
  readonly key: ConversationKey
  /** The last item's time (0 for a group without one). */
  readonly time: number
  readonly last?: ChatItem
}

/** Every conversation the inbox (or a pending send) has, plus `extra` ones (groups), newest first. */
export const conversationsOf = (
  entries: ReadonlyArray<InboxEntry>,
  pending: ReadonlyArray<PendingSend>,
  me: string,
  extra: ReadonlyArray<ConversationKey>
): Array<ConversationRow> => {
  const last = new Map<ConversationKey, InboxEntry>()
  for (const entry of entries) {
    const key = conversationOf(entry.message, me)
    if (key !== undefined) last.set(key, entry)
  }
  const rows = new Map<ConversationKey, ConversationRow>()
  for (const key of extra) rows.set(key, { key, time: 0 })
  const facts: InboxFacts = { reads: new Map(), recalled: new Set() }
  for (const [key, entry] of last) {
    const items = itemsOf(key, [entry], [], me, facts)
    rows.set(key, { key, time: entry.message.send_time, ...(items[0] ? { last: items[0] } : {}) })
  }
  for (const send of pending) {
    const row = rows.get(send.key)
    if (row === undefined || row.time <= send.create_time) {
      const items = itemsOf(send.key, [], [send], me, facts)
      rows.set(send.key, { key: send.key, time: send.create_time, ...(items[0] ? { last: items[0] } : {}) })
    }
  }
  return [...rows.values()].sort((a, b) => b.time - a.time)
}

/** The highest seq among a conversation's entries: what marking it read moves to. */
export const lastSeqOf = (key: ConversationKey, entries: ReadonlyArray<InboxEntry>, me: string): number => {
  for (let i = entries.length - 1; i >= 0; i--) {
    if (conversationOf(entries[i]!.message, me) === key) return entries[i]!.seq
  }
  return 0
}

/** Whether a conversation has entries from others above `seq`. */
export const hasUnreadAfter = (key: ConversationKey, entries: ReadonlyArray<InboxEntry>, me: string, seq: number): boolean => {
  for (let i = entries.length - 1; i >= 0 && entries[i]!.seq > seq; i--) {
    const message = entries[i]!.message
    if (message.kind !== "notice" && message.sender_id !== me && conversationOf(message, me) === key) return true
  }
  return false
}

/** Types the server accepts for files (docs/protocol.md, Files); anything else goes as octet-stream. */
const ALLOWED_FILE_TYPES = new Set([
  "image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif", "image/avif",
  "audio/mpeg", "audio/mp4", "audio/aac", "audio/ogg", "audio/opus", "audio/wav", "audio/webm", "audio/amr",
  "video/mp4", "video/webm", "video/quicktime", "video/3gpp",
  "application/pdf", "application/zip", "text/plain", "application/octet-stream"
])

/** Images a browser shows inline. */
const SHOWN_IMAGES = new Set(["image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"])

/** How to send a picked file: the type to announce, and whether it goes as an image. */
export const fileKindOf = (type: string): { readonly mime: string; readonly content_type: "image" | "file" } => {
  const mime = ALLOWED_FILE_TYPES.has(type) ? type : "application/octet-stream"
  return { mime, content_type: SHOWN_IMAGES.has(mime) ? "image" : "file" }
}

export const formatSize = (bytes: number): string =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`

/** A line of text for a group event; `name` gives a user's display name. */
export const describeEvent = (event: GroupEvent, actor: string, name: (id: string) => string): string => {
  switch (event.type) {
    case "group_created":
      return `${name(actor)} created the group “${event.name}”`
    case "member_joined": {
      const who = event.user_ids.map(name).join(", ")
      return event.how === "invited" ? `${name(actor)} added ${who}` : `${who} joined`
    }
    case "member_left":
      return `${name(event.user_id)} left`
    case "member_removed":
      return `${name(actor)} removed ${name(event.user_id)}`
    case "role_changed":
      return `${name(event.user_id)} is now ${event.role === "admin" ? "an admin" : "a member"}`
    case "owner_transferred":
      return `${name(event.owner_id)} is now the owner`
    case "group_updated":
      return `${name(actor)} changed the group${event.changes.name !== undefined ? ` name to “${event.changes.name}”` : ""}`
    case "group_dismissed":
      return `${name(actor)} dismissed the group`
    case "join_requested":
      return `${name(event.user_id)} asked to join`
    case "join_rejected":
      return `A request to join was declined`
  }
}

/** A short line for the conversation list. */
export const previewOf = (item: ChatItem | undefined, name: (id: string) => string): string => {
  if (item === undefined) return "No messages yet"
  if (item.type === "event") return describeEvent(item.event, item.sender_id, name)
  if (item.recalled) return "Message recalled"
  const prefix = item.mine ? "You: " : ""
  switch (item.content_type) {
    case "text":
      return prefix + item.content
    case "image":
      return `${prefix}Photo`
    default:
      return `${prefix}File: ${fileOf(item.content)?.name ?? item.file_name ?? "file"}`
  }
}
