import * as Settings from "@im/ports/Settings"
import { Chat } from "@im/chat/Chat"
import { Db } from "@im/db/Db"
import { ConversationNotFound, InvalidRequest, MessageNotFound, RecallWindowPassed } from "@im/domain/Errors"
import type { GroupId, ServerId, UserId } from "@im/domain/Ids"
import { type Message, singleParticipants } from "@im/domain/Message"
import { type Conversation, ConversationStore } from "@im/ports/ConversationStore"
import { GroupStore } from "@im/ports/GroupStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { Clock, Duration, Effect, Layer, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser, ImApi } from "./Api.ts"
import { noticePublisher } from "./Notices.ts"
import { storeUnavailable } from "./StoreUnavailable.ts"

const summary = (conversation: Conversation) => ({
  ...conversation,
  ...(conversation.conversation.startsWith("g:")
    ? { group_id: conversation.conversation.slice(2) as GroupId }
    : { user_id: conversation.conversation.slice(2) as UserId })
})

/** How many of the newly read entries a read receipt looks through to find their senders. */
const READ_SCAN_LIMIT = 1_000

const ConversationsHandlers = HttpApiBuilder.group(
  ImApi,
  "conversations",
  Effect.fn(function*(handlers) {
    const conversations = yield* ConversationStore
    const db = yield* Db
    const publishNotice = noticePublisher(yield* Chat)
    return handlers
      .handle("list", () =>
        Effect.gen(function*() {
          return (yield* conversations.list(yield* CurrentUser)).map(summary)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("read", ({ payload }) =>
        Effect.gen(function*() {
          const reader = yield* CurrentUser
          if ((payload.user_id === undefined) === (payload.group_id === undefined)) {
            return yield* new InvalidRequest({ message: "name exactly one of user_id and group_id" })
          }
          const key = payload.group_id !== undefined ? `g:${payload.group_id}` : `u:${payload.user_id}`
          const marked = yield* conversations.markRead(reader, key, payload.seq)
          if (Option.isNone(marked)) return yield* new ConversationNotFound({ message: `you have no conversation ${key}` })
          const { after, before } = marked.value
          if (after.read_seq > before.read_seq) {
            // Tell each sender of a newly read message how far the reader has read them.
            const page = yield* db.pull({ user: reader, after: before.read_seq, until: after.read_seq, limit: READ_SCAN_LIMIT }).pipe(
              Effect.catchTag("InvalidRange", Effect.die) // read_seq only grows: the range is valid
            )
            const newest = new Map<UserId, Message>()
            for (const { message } of page.entries) {
              const inConversation = payload.group_id !== undefined
                ? message.kind === "group" && message.group_id === payload.group_id
                : message.kind === "single" && message.sender_id === payload.user_id && message.receiver_id === reader
              if (inConversation) newest.set(message.sender_id, message)
            }
            yield* Effect.forEach(newest, ([sender, message]) =>
              publishNotice({
                sender_id: reader,
                to: [sender],
                group_id: payload.group_id,
                event: { type: "read", reader_id: reader, through_server_id: message.server_id, through_send_time: message.send_time }
              }), { discard: true })
          }
          return summary(after)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
  })
)

const RecallHandlers = HttpApiBuilder.group(
  ImApi,
  "messages",
  Effect.fn(function*(handlers) {
    const history = yield* HistoryStore
    const groups = yield* GroupStore
    const publishNotice = noticePublisher(yield* Chat)
    const window = yield* Settings.durationOrZero("RECALL_WINDOW", Duration.minutes(2))
    const windowMs = Duration.toMillis(window)
    return handlers.handle("recall", ({ params }) =>
      Effect.gen(function*() {
        const caller = yield* CurrentUser
        const [message] = yield* history.get([params.server_id])
        if (message === undefined || message.sender_id !== caller || message.kind === "notice") {
          return yield* new MessageNotFound({ message: `you sent no message ${params.server_id}` })
        }
        const answer = { server_id: params.server_id as ServerId, recalled: true as const }
        if (message.recalled === true) return answer
        if ((yield* Clock.currentTimeMillis) - message.send_time > windowMs) {
          return yield* new RecallWindowPassed({ message: `messages can be recalled within ${Duration.format(window)} of sending`, window_ms: windowMs })
        }
        yield* history.recall(params.server_id)
        const to = message.kind === "group"
          ? [...(yield* groups.members(message.group_id!)).map((member) => member.user_id), caller]
          : singleParticipants(message)
        yield* publishNotice({ sender_id: caller, to, group_id: message.group_id, event: { type: "message_recalled", server_id: message.server_id } })
        yield* Effect.logInfo("message recalled", { server_id: message.server_id })
        return answer
      }).pipe(Effect.catchTag("PortError", storeUnavailable)))
  })
)

/** Conversations with unread counts and read receipts, and recall. */
export const MessagesHandlers = Layer.mergeAll(ConversationsHandlers, RecallHandlers)
