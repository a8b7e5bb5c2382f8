import { Schema } from "effect"
import type { GroupId, UserId } from "./Ids.ts"

/**
 * A notice tells users about an event through their inboxes (kind `notice`, content type
 * `notice`), so a user who was offline gets it on sync like any message. Its `content` is the
 * event as JSON: `{"type": "<event>", …}`; each feature documents its events in
 * docs/protocol.md. The sender is the user whose action caused it.
 */
export interface NoticeEvent {
  readonly type: string
  readonly [field: string]: unknown
}

/** What a service asks the chat service to publish. */
export interface NoticeRequest {
  /** Who caused the event. */
  readonly sender_id: UserId
  /** Who is told; duplicates are told once. At most MAX_NOTICE_RECIPIENTS. */
  readonly to: ReadonlyArray<UserId>
  /** The group the event is about: its notices keep their order with the group's messages. */
  readonly group_id?: GroupId | undefined
  /** Unique per sender: publishing the same event twice stores it once (up to 60 characters). */
  readonly event_id: string
  readonly event: NoticeEvent
}

/** A notice goes to at most this many users (a group's members and the one who left). */
export const MAX_NOTICE_RECIPIENTS = 2_001

export const NoticeEventType = Schema.String.pipe(Schema.check(Schema.isPattern(/^[a-z_]{1,40}$/)))
