import type {
  Contact,
  ContactChanges,
  ContactState,
  FriendRequest,
  FriendRequestId,
  FriendRequests
} from "@im/domain/Friend"
import type { UserId } from "@im/domain/Ids"
import { Context, Effect, Layer } from "effect"
import type { PortError } from "./PortError.ts"

/** A request to file: the store decides whether it is new, a repeat, or refused. */
export interface NewFriendRequest {
  readonly id: FriendRequestId
  readonly from_id: UserId
  readonly to_id: UserId
  readonly message: string
  readonly created_at: number
}

export type RequestOutcome =
  /**
   * Filed as a new pending request. `delivered` is false when the addressee has blocked the
   * requester: the request is kept for the requester to see, but its addressee never does.
   */
  | { readonly _tag: "Sent"; readonly request: FriendRequest; readonly delivered: boolean }
  /** The requester already has a pending request to this user: that one. */
  | { readonly _tag: "AlreadyPending"; readonly request: FriendRequest }
  | { readonly _tag: "AlreadyFriends" }
  /** The other user already asked the requester: this is their pending request. */
  | { readonly _tag: "IncomingPending"; readonly request: FriendRequest }
  /** The requester has blocked this user. */
  | { readonly _tag: "RequesterBlocked" }

export type AnswerOutcome =
  | { readonly _tag: "Answered"; readonly request: FriendRequest }
  /** No such request, or it is not addressed to this user, or it is from someone they blocked. */
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "NotPending"; readonly request: FriendRequest }

export interface BlockOutcome {
  /** False when the user had blocked the target already: nothing changed. */
  readonly changed: boolean
  /** They were friends, and are not any more. */
  readonly wereFriends: boolean
}

/**
 * Friend requests, and every user's contact list: the users they are friends with (always
 * both ways) and the users they blocked.
 *
 * Each list has a **version**: every change to a user's list (an entry added, removed, or
 * changed from friend to blocked) raises that user's version by one and stamps the entry with
 * it; a removed entry stays as a tombstone, so `changesSince` can answer what changed after any
 * version. Every operation is atomic: it changes all it changes (requests, both users' lists,
 * their versions) or nothing.
 *
 * Blocking: `block(a, b)` puts b on a's list as blocked, ends their friendship (b's entry for a
 * is removed), withdraws a's pending request to b, and hides b's requests to a from a (a never
 * sees them; `unblock` drops them).
 */

/** `blocker` has blocked `blocked`: one-to-one messages from `blocked` to `blocker` are refused. */
export interface BlockPair {
  readonly blocker: UserId
  readonly blocked: UserId
}
export class FriendStore extends Context.Service<FriendStore, {
  readonly request: (request: NewFriendRequest) => Effect.Effect<RequestOutcome, PortError>
  /** The addressee accepts a pending request: both become friends. */
  readonly accept: (id: FriendRequestId, by: UserId, now: number) => Effect.Effect<AnswerOutcome, PortError>
  /** The addressee rejects a pending request. */
  readonly reject: (id: FriendRequestId, by: UserId, now: number) => Effect.Effect<AnswerOutcome, PortError>
  /** The user's pending requests, oldest first (incoming ones from users they blocked left out). */
  readonly requests: (user: UserId) => Effect.Effect<FriendRequests, PortError>
  /** Ends a friendship both ways; false when they were not friends (nothing changes). */
  readonly unfriend: (user: UserId, friend: UserId, now: number) => Effect.Effect<boolean, PortError>
  readonly block: (user: UserId, target: UserId, now: number) => Effect.Effect<BlockOutcome, PortError>
  /** Takes the target off the user's list; false when the user had not blocked them. */
  readonly unblock: (user: UserId, target: UserId, now: number) => Effect.Effect<boolean, PortError>
  /**
   * The pairs among `pairs` where `blocker` has blocked `blocked`, in one call: a chat service
   * checks every one-to-one send, so concurrent sends are checked together.
   */
  readonly blocking: (pairs: ReadonlyArray<BlockPair>) => Effect.Effect<ReadonlyArray<BlockPair>, PortError>
  /**
   * Every user each of `blockers` has blocked, in one call: what a cache of block relations
   * loads (see CachedFriendStore.ts). Every blocker asked is in the answer, with none when they
   * blocked nobody.
   */
  readonly blockedBy: (blockers: ReadonlyArray<UserId>) => Effect.Effect<ReadonlyMap<UserId, ReadonlyArray<UserId>>, PortError>
  /**
   * The entries of the user's list changed after `since`, tombstones included, ascending by
   * version; with `since` 0 (or above the current version) the whole current list, `full`.
   */
  readonly changesSince: (user: UserId, since: number) => Effect.Effect<ContactChanges, PortError>
}>()("@im/ports/FriendStore") {
  static readonly layerMemory = Layer.sync(FriendStore, () => {
    const requests = new Map<FriendRequestId, FriendRequest>()
    const lists = new Map<UserId, Map<UserId, Contact>>()
    const versions = new Map<UserId, number>()

    const listOf = (user: UserId) => {
      let list = lists.get(user)
      if (list === undefined) lists.set(user, list = new Map())
      return list
    }
    /** The live entry for `other` on `user`'s list. */
    const stateOf = (user: UserId, other: UserId): ContactState | undefined => {
      const entry = lists.get(user)?.get(other)
      return entry === undefined || entry.removed === true ? undefined : entry.state
    }
    const bump = (user: UserId) => {
      const version = (versions.get(user) ?? 0) + 1
      versions.set(user, version)
      return version
    }
    const put = (user: UserId, other: UserId, state: ContactState, now: number) => {
      listOf(user).set(other, { user_id: other, state, updated_version: bump(user), created_at: now, updated_at: now })
    }
    const remove = (user: UserId, other: UserId, now: number) => {
      const entry = lists.get(user)?.get(other)
      if (entry === undefined || entry.removed === true) return
      listOf(user).set(other, { ...entry, removed: true, updated_version: bump(user), updated_at: now })
    }
    const pending = (from: UserId, to: UserId) =>
      [...requests.values()].find((r) => r.status === "pending" && r.from_id === from && r.to_id === to)
    const close = (request: FriendRequest | undefined, status: FriendRequest["status"], now: number) => {
      if (request === undefined) return undefined
      const closed = { ...request, status, updated_at: now }
      requests.set(request.id, closed)
      return closed
    }
    const oldestFirst = (a: FriendRequest, b: FriendRequest) =>
      a.created_at - b.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

    const answer = (id: FriendRequestId, by: UserId, now: number, status: "accepted" | "rejected"): AnswerOutcome => {
      const request = requests.get(id)
      if (request === undefined || request.to_id !== by || stateOf(by, request.from_id) === "blocked") {
        return { _tag: "NotFound" }
      }
      if (request.status !== "pending") return { _tag: "NotPending", request }
      const answered = close(request, status, now)!
      if (status === "accepted") {
        close(pending(by, request.from_id), "accepted", now)
        if (stateOf(request.from_id, by) === undefined) put(request.from_id, by, "friend", now)
        if (stateOf(by, request.from_id) === undefined) put(by, request.from_id, "friend", now)
      }
      return { _tag: "Answered", request: answered }
    }

    return FriendStore.of({
      request: (input) =>
        Effect.sync((): RequestOutcome => {
          const mine = stateOf(input.from_id, input.to_id)
          if (mine === "blocked") return { _tag: "RequesterBlocked" }
          if (mine === "friend") return { _tag: "AlreadyFriends" }
          const repeated = pending(input.from_id, input.to_id)
          if (repeated !== undefined) return { _tag: "AlreadyPending", request: repeated }
          const incoming = pending(input.to_id, input.from_id)
          if (incoming !== undefined) return { _tag: "IncomingPending", request: incoming }
          const request: FriendRequest = { ...input, status: "pending", updated_at: input.created_at }
          requests.set(request.id, request)
          return { _tag: "Sent", request, delivered: stateOf(input.to_id, input.from_id) !== "blocked" }
        }),
      accept: (id, by, now) => Effect.sync(() => answer(id, by, now, "accepted")),
      reject: (id, by, now) => Effect.sync(() => answer(id, by, now, "rejected")),
      requests: (user) =>
        Effect.sync(() => {
          const open = [...requests.values()].filter((r) => r.status === "pending").sort(oldestFirst)
          return {
            incoming: open.filter((r) => r.to_id === user && stateOf(user, r.from_id) !== "blocked"),
            outgoing: open.filter((r) => r.from_id === user)
          }
        }),
      unfriend: (user, friend, now) =>
        Effect.sync(() => {
          if (stateOf(user, friend) !== "friend") return false
          remove(user, friend, now)
          if (stateOf(friend, user) === "friend") remove(friend, user, now)
          return true
        }),
      block: (user, target, now) =>
        Effect.sync((): BlockOutcome => {
          const mine = stateOf(user, target)
          if (mine === "blocked") return { changed: false, wereFriends: false }
          put(user, target, "blocked", now)
          if (stateOf(target, user) === "friend") remove(target, user, now)
          close(pending(user, target), "rejected", now)
          return { changed: true, wereFriends: mine === "friend" }
        }),
      unblock: (user, target, now) =>
        Effect.sync(() => {
          if (stateOf(user, target) !== "blocked") return false
          remove(user, target, now)
          close(pending(target, user), "rejected", now)
          return true
        }),
      blocking: (pairs) => Effect.sync(() => pairs.filter(({ blocked, blocker }) => stateOf(blocker, blocked) === "blocked")),
      blockedBy: (blockers) =>
        Effect.sync(() =>
          new Map(blockers.map((blocker) => [
            blocker,
            [...(lists.get(blocker)?.keys() ?? [])].filter((other) => stateOf(blocker, other) === "blocked")
          ]))
        ),
      changesSince: (user, since) =>
        Effect.sync((): ContactChanges => {
          const version = versions.get(user) ?? 0
          const entries = [...(lists.get(user)?.values() ?? [])].sort((a, b) => a.updated_version - b.updated_version)
          const full = since <= 0 || since > version
          return {
            version,
            full,
            friends: full
              ? entries.filter((entry) => entry.removed !== true)
              : entries.filter((entry) => entry.updated_version > since)
          }
        })
    })
  })
}
