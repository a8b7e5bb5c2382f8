import { ConversationNotFound, InvalidRequest, MessageNotFound, RecallWindowPassed, ServiceUnavailable } from "@im/domain/Errors"
import { GroupId, Seq, ServerId, UserId } from "@im/domain/Ids"
import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"

/** One of the caller's conversations: with a user (`user_id`) or in a group (`group_id`). */
export const ConversationSummary = Schema.Struct({
  /** `u:<user id>` or `g:<group id>`. */
  conversation: Schema.String,
  user_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId),
  /** The caller's newest entry in it. */
  last_seq: Seq,
  last_server_id: ServerId,
  /** Everything up to this seq of the caller's inbox is read. */
  read_seq: Seq,
  /** Entries from others after `read_seq`. */
  unread: Schema.Int
})

export const MarkRead = Schema.Struct({
  user_id: Schema.optionalKey(UserId),
  group_id: Schema.optionalKey(GroupId),
  /** A seq of the caller's inbox: the entries of this conversation up to it are read. */
  seq: Seq
})

export class ConversationsApi extends HttpApiGroup.make("conversations")
  .add(
    HttpApiEndpoint.get("list", "/", {
      success: Schema.Array(ConversationSummary),
      error: ServiceUnavailable
    }).annotate(OpenApi.Description, "The caller's conversations, newest first, with their unread counts."),
    HttpApiEndpoint.post("read", "/read", {
      payload: MarkRead,
      success: ConversationSummary,
      error: [ConversationNotFound, InvalidRequest, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Mark the conversation with user_id, or in group_id (exactly one), read up to seq of the caller's inbox " +
        "(never backwards, never past its newest entry). The senders of the newly read messages get a `read` notice."
    )
  )
  .prefix("/conversations")
  .annotateMerge(OpenApi.annotations({ title: "Conversations" }))
{}

export class MessagesApi extends HttpApiGroup.make("messages")
  .add(
    HttpApiEndpoint.post("recall", "/:server_id/recall", {
      params: { server_id: ServerId },
      success: Schema.Struct({ server_id: ServerId, recalled: Schema.Literal(true) }),
      error: [MessageNotFound, RecallWindowPassed, ServiceUnavailable]
    }).annotate(
      OpenApi.Description,
      "Recall a message the caller sent, within RECALL_WINDOW (default 2 minutes) of its send_time. Its content is " +
        "emptied for good; pulls show it with `recalled: true`, and its participants get a `message_recalled` notice. " +
        "Recalling it again succeeds and changes nothing."
    )
  )
  .prefix("/messages")
  .annotateMerge(OpenApi.annotations({ title: "Messages" }))
{}
