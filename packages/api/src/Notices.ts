import type { Chat } from "@im/chat/Chat"
import type { NoticeRequest } from "@im/domain/Notice"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"

/**
 * Publishes notices through `chat`, each with a fresh event id. The change a notice reports is
 * made already, so a failure is logged, not answered: the receivers' next sync shows the change.
 */
export const noticePublisher = (chat: Chat["Service"]) => (notice: Omit<NoticeRequest, "event_id">): Effect.Effect<void> =>
  notice.to.length === 0 ? Effect.void : chat.notify({ ...notice, event_id: randomBytes(16).toString("base64url") }).pipe(
    Effect.asVoid,
    Effect.catchCause((cause) =>
      Effect.logWarning("a notice was not published; the receivers' sync will show the change", {
        type: notice.event.type,
        group: notice.group_id,
        cause
      }))
  )
