import { Chat } from "@im/chat/Chat"
import {
  AlreadyFriends,
  CannotFriendSelf,
  FriendRequestNotFound,
  FriendRequestNotPending,
  FriendRequestPending,
  NotBlocked,
  NotFriends,
  UserBlocked,
  UserNotFound
} from "@im/domain/Errors"
import { FriendRequestId } from "@im/domain/Friend"
import type { UserId } from "@im/domain/Ids"
import type { NoticeEvent } from "@im/domain/Notice"
import { type AnswerOutcome, FriendStore } from "@im/ports/FriendStore"
import { UserStore } from "@im/ports/UserStore"
import { Clock, Effect, Option } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { CurrentUser, ImApi } from "./Api.ts"
import { noticePublisher } from "./Notices.ts"
import { storeUnavailable } from "./StoreUnavailable.ts"

/**
 * Friends. The caller is always the token's user. Every change is made in the store first and
 * then told through notices; a notice that cannot be published is logged and the change still
 * answers success: the store is the truth, and the other party's next sync (their contact list
 * since their version, their pending requests) shows it.
 */
export const FriendsHandlers = HttpApiBuilder.group(
  ImApi,
  "friends",
  Effect.fn(function*(handlers) {
    const friends = yield* FriendStore
    const users = yield* UserStore
    const chat = yield* Chat

    const publish = noticePublisher(chat)
    const tell = (sender: UserId, to: ReadonlyArray<UserId>, event: NoticeEvent) => publish({ sender_id: sender, to, event })

    const existing = Effect.fn(function*(user: UserId) {
      const found = yield* users.existing([user])
      if (!found.has(user)) return yield* new UserNotFound({ message: `no user ${user}` })
    })

    /** The answered request, or the error an outcome stands for. */
    const answered = (outcome: AnswerOutcome) => {
      switch (outcome._tag) {
        case "Answered":
          return Effect.succeed(outcome.request)
        case "NotFound":
          return Effect.fail(new FriendRequestNotFound({ message: "no such friend request addressed to you" }))
        case "NotPending":
          return Effect.fail(
            new FriendRequestNotPending({
              message: `the request was ${outcome.request.status} already`,
              status: outcome.request.status
            })
          )
      }
    }

    return handlers
      .handle("request", ({ payload }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          const them = payload.user_id
          if (them === me) return yield* new CannotFriendSelf({ message: "you cannot ask yourself to be friends" })
          yield* existing(them)
          const outcome = yield* friends.request({
            id: FriendRequestId.make(`fr_${randomBytes(12).toString("base64url")}`),
            from_id: me,
            to_id: them,
            message: payload.message ?? "",
            created_at: yield* Clock.currentTimeMillis
          })
          switch (outcome._tag) {
            case "Sent": {
              const requester = yield* users.findById(me)
              // A request to someone who blocked the requester: only the requester's own devices
              // hear of it, exactly as they would of a delivered one.
              yield* tell(me, outcome.delivered ? [them, me] : [me], {
                type: "friend_request",
                request: outcome.request,
                ...Option.match(requester, { onNone: () => ({}), onSome: (user) => ({ user }) })
              })
              yield* Effect.logInfo("friend request", { request: outcome.request.id })
              return outcome.request
            }
            case "AlreadyPending":
              return outcome.request
            case "AlreadyFriends":
              return yield* new AlreadyFriends({ message: `you and ${them} are friends already` })
            case "IncomingPending":
              return yield* new FriendRequestPending({
                message: `${them} already asked you: accept their request`,
                request_id: outcome.request.id
              })
            case "RequesterBlocked":
              return yield* new UserBlocked({ message: `you have blocked ${them}: unblock them first` })
          }
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("requests", () =>
        Effect.gen(function*() {
          return yield* friends.requests(yield* CurrentUser)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("accept", ({ params }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          const request = yield* answered(yield* friends.accept(params.request_id, me, yield* Clock.currentTimeMillis))
          yield* tell(me, [request.from_id, me], { type: "friend_accepted", request })
          return request
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("reject", ({ params }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          const request = yield* answered(yield* friends.reject(params.request_id, me, yield* Clock.currentTimeMillis))
          yield* tell(me, [request.from_id, me], { type: "friend_rejected", request })
          return request
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("list", ({ query }) =>
        Effect.gen(function*() {
          return yield* friends.changesSince(yield* CurrentUser, query.since ?? 0)
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("remove", ({ params }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          const them = params.user_id
          if (!(yield* friends.unfriend(me, them, yield* Clock.currentTimeMillis))) {
            return yield* new NotFriends({ message: `you and ${them} are not friends` })
          }
          yield* tell(me, [them, me], { type: "friend_deleted", user_id: me, friend_id: them })
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("block", ({ params }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          const them = params.user_id
          if (them === me) return yield* new CannotFriendSelf({ message: "you cannot block yourself" })
          yield* existing(them)
          const outcome = yield* friends.block(me, them, yield* Clock.currentTimeMillis)
          // The blocked user hears what a deletion would tell them, and only if they were friends.
          if (outcome.wereFriends) yield* tell(me, [them], { type: "friend_deleted", user_id: me, friend_id: them })
          if (outcome.changed) yield* tell(me, [me], { type: "friend_blocked", user_id: them })
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
      .handle("unblock", ({ params }) =>
        Effect.gen(function*() {
          const me = yield* CurrentUser
          const them = params.user_id
          if (!(yield* friends.unblock(me, them, yield* Clock.currentTimeMillis))) {
            return yield* new NotBlocked({ message: `you have not blocked ${them}` })
          }
          yield* tell(me, [me], { type: "friend_unblocked", user_id: them })
        }).pipe(Effect.catchTag("PortError", storeUnavailable)))
  })
)
