import { type Contact, FriendRequestId } from "@im/domain/Friend"
import type { UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { FriendStore, type NewFriendRequest } from "../src/FriendStore.ts"
import { freshUserId, unique } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const newRequest = (from_id: UserId, to_id: UserId, created_at = 1_000, message = "hi, it's me 👋"): NewFriendRequest => ({
  id: FriendRequestId.make(unique("fr")),
  from_id,
  to_id,
  message,
  created_at
})

/** Files a request that must be new, and answers it. */
const sent = Effect.fn(function*(request: NewFriendRequest) {
  const outcome = yield* (yield* FriendStore).request(request)
  assert.strictEqual(outcome._tag, "Sent")
  return outcome._tag === "Sent" ? outcome : assert.fail("not sent")
})

/** Makes two users friends through a request and its acceptance. */
const befriend = Effect.fn(function*(a: UserId, b: UserId, now = 2_000) {
  const { request } = yield* sent(newRequest(a, b))
  const accepted = yield* (yield* FriendStore).accept(request.id, b, now)
  assert.strictEqual(accepted._tag, "Answered")
})

/** Whether `blocker` has blocked `blocked`, asked alone. */
const blocks = Effect.fn(function*(blocker: UserId, blocked: UserId) {
  return (yield* (yield* FriendStore).blocking([{ blocker, blocked }])).length === 1
})

/** A list's entries as [user, state, removed?], in version order. */
const entries = (contacts: ReadonlyArray<Contact>) =>
  contacts.map((c) => [c.user_id, c.state, ...(c.removed === true ? ["removed"] : [])])

/**
 * The FriendStore contract: requests and their answers, friendships both ways, blocking, and
 * every user's contact list with its version and tombstones for incremental sync.
 */
export const friendStoreSuite = (name: string, adapter: Layer.Layer<FriendStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`FriendStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("blocking answers, in one call, exactly the pairs where the first blocked the second", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob, carol, dave] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        yield* friends.block(alice, bob, 1_000)
        yield* friends.block(carol, alice, 1_001)
        yield* befriend(dave, alice)
        const asked = [
          { blocker: alice, blocked: bob },
          { blocker: bob, blocked: alice },
          { blocker: carol, blocked: alice },
          { blocker: dave, blocked: alice },
          { blocker: alice, blocked: carol }
        ]
        assert.deepStrictEqual(yield* friends.blocking(asked), [asked[0], asked[2]])
        assert.deepStrictEqual(yield* friends.blocking([]), [])
        yield* friends.unblock(alice, bob, 1_002)
        assert.deepStrictEqual(yield* friends.blocking(asked), [asked[2]])
      }))

    it.effect("blockedBy answers, in one call, every user each blocker has blocked now, and none for the others", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob, carol, dave, erin] = [freshUserId(), freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        yield* friends.block(alice, bob, 1_000)
        yield* friends.block(alice, carol, 1_001)
        yield* friends.block(carol, alice, 1_002)
        yield* friends.block(alice, erin, 1_003)
        yield* friends.unblock(alice, erin, 1_004)
        yield* befriend(alice, dave)
        const sorted = (map: ReadonlyMap<UserId, ReadonlyArray<UserId>>) =>
          [...map.entries()].map(([blocker, blocked]) => [blocker, [...blocked].sort()] as const).sort(([a], [b]) => (a < b ? -1 : 1))
        assert.deepStrictEqual(
          sorted(yield* friends.blockedBy([alice, carol, dave, bob, alice])),
          sorted(new Map([[alice, [bob, carol]], [carol, [alice]], [dave, []], [bob, []]]))
        )
        assert.strictEqual((yield* friends.blockedBy([])).size, 0)
        yield* friends.unblock(alice, bob, 1_005)
        yield* friends.block(dave, alice, 1_006)
        assert.deepStrictEqual(sorted(yield* friends.blockedBy([alice, dave])), sorted(new Map([[alice, [carol]], [dave, [alice]]])))
      }))

    it.effect("a request is pending for both; a repeat gives the same one; accepting makes both friends and moves both versions", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob] = [freshUserId(), freshUserId()]
        const { request, delivered } = yield* sent(newRequest(alice, bob))
        assert.isTrue(delivered)
        assert.deepInclude(request, { from_id: alice, to_id: bob, status: "pending", message: "hi, it's me 👋", created_at: 1_000, updated_at: 1_000 })
        assert.deepStrictEqual(yield* friends.requests(bob), { incoming: [request], outgoing: [] })
        assert.deepStrictEqual(yield* friends.requests(alice), { incoming: [], outgoing: [request] })

        assert.deepStrictEqual(yield* friends.request(newRequest(alice, bob, 1_500)), { _tag: "AlreadyPending", request })
        assert.deepStrictEqual(yield* friends.request(newRequest(bob, alice, 1_500)), { _tag: "IncomingPending", request })
        assert.deepStrictEqual(yield* friends.changesSince(alice, 0), { version: 0, full: true, friends: [] })

        const accepted = yield* friends.accept(request.id, bob, 2_000)
        assert.deepStrictEqual(accepted, { _tag: "Answered", request: { ...request, status: "accepted", updated_at: 2_000 } })
        assert.deepStrictEqual(yield* friends.requests(bob), { incoming: [], outgoing: [] })
        for (const [user, friend] of [[alice, bob], [bob, alice]] as const) {
          assert.deepStrictEqual(yield* friends.changesSince(user, 0), {
            version: 1,
            full: true,
            friends: [{ user_id: friend, state: "friend", updated_version: 1, created_at: 2_000, updated_at: 2_000 }]
          })
        }
        assert.deepStrictEqual(yield* friends.request(newRequest(bob, alice)), { _tag: "AlreadyFriends" })
        assert.deepStrictEqual(yield* friends.request(newRequest(alice, bob)), { _tag: "AlreadyFriends" })
      }))

    it.effect("only the addressee answers, and only once; a rejected request leaves no friendship and a new one may follow", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
        const { request } = yield* sent(newRequest(alice, bob))
        for (const outsider of [alice, carol]) {
          assert.deepStrictEqual(yield* friends.accept(request.id, outsider, 2_000), { _tag: "NotFound" })
          assert.deepStrictEqual(yield* friends.reject(request.id, outsider, 2_000), { _tag: "NotFound" })
        }
        assert.deepStrictEqual(yield* friends.accept(FriendRequestId.make(unique("fr")), bob, 2_000), { _tag: "NotFound" })
        assert.deepStrictEqual((yield* friends.requests(bob)).incoming, [request], "a refused answer changes nothing")
        assert.strictEqual((yield* friends.changesSince(alice, 0)).version, 0)

        const rejected = { ...request, status: "rejected" as const, updated_at: 3_000 }
        assert.deepStrictEqual(yield* friends.reject(request.id, bob, 3_000), { _tag: "Answered", request: rejected })
        assert.deepStrictEqual(yield* friends.accept(request.id, bob, 4_000), { _tag: "NotPending", request: rejected })
        assert.deepStrictEqual(yield* friends.reject(request.id, bob, 4_000), { _tag: "NotPending", request: rejected })
        assert.deepStrictEqual(yield* friends.requests(alice), { incoming: [], outgoing: [] })
        for (const user of [alice, bob]) assert.deepStrictEqual(yield* friends.changesSince(user, 0), { version: 0, full: true, friends: [] })

        const again = yield* sent(newRequest(alice, bob, 5_000))
        assert.notStrictEqual(again.request.id, request.id)
        assert.deepStrictEqual((yield* friends.requests(bob)).incoming, [again.request])
      }))

    it.effect("lists requests oldest first, each user's own", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob, carol, dave] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        const fromCarol = (yield* sent(newRequest(carol, alice, 3_000))).request
        const fromBob = (yield* sent(newRequest(bob, alice, 2_000))).request
        const toDave = (yield* sent(newRequest(alice, dave, 4_000))).request
        assert.deepStrictEqual(yield* friends.requests(alice), { incoming: [fromBob, fromCarol], outgoing: [toDave] })
        assert.deepStrictEqual(yield* friends.requests(dave), { incoming: [toDave], outgoing: [] })
      }))

    it.effect("unfriending ends it both ways with tombstones; changesSince answers only what changed after a version", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob, carol, dave] = [freshUserId(), freshUserId(), freshUserId(), freshUserId()]
        yield* befriend(alice, bob)
        yield* befriend(carol, alice)
        const seen = (yield* friends.changesSince(alice, 0)).version
        assert.strictEqual(seen, 2)

        assert.isTrue(yield* friends.unfriend(alice, bob, 5_000))
        assert.isFalse(yield* friends.unfriend(alice, bob, 5_001))
        assert.isFalse(yield* friends.unfriend(alice, dave, 5_001))
        yield* befriend(alice, dave, 6_000)

        const changes = yield* friends.changesSince(alice, seen)
        assert.deepStrictEqual({ ...changes, friends: entries(changes.friends) }, {
          version: 4,
          full: false,
          friends: [[bob, "friend", "removed"], [dave, "friend"]]
        })
        assert.deepInclude(changes.friends[0], { updated_version: 3, updated_at: 5_000 })
        assert.deepStrictEqual(entries((yield* friends.changesSince(alice, 0)).friends), [[carol, "friend"], [dave, "friend"]])
        assert.deepStrictEqual(yield* friends.changesSince(alice, 4), { version: 4, full: false, friends: [] })
        const ahead = yield* friends.changesSince(alice, 99)
        assert.deepStrictEqual([ahead.full, entries(ahead.friends)], [true, [[carol, "friend"], [dave, "friend"]]])

        // Bob's list moved too: his tombstone for alice is after the version he had.
        const bobs = yield* friends.changesSince(bob, 1)
        assert.deepStrictEqual([bobs.version, entries(bobs.friends)], [2, [[alice, "friend", "removed"]]])
        assert.deepStrictEqual(yield* friends.changesSince(bob, 0), { version: 2, full: true, friends: [] })

        // Friends again: the tombstone becomes a live entry again, at a new version.
        yield* befriend(bob, alice, 7_000)
        const again = yield* friends.changesSince(alice, 4)
        assert.deepStrictEqual([again.version, entries(again.friends)], [5, [[bob, "friend"]]])
        assert.deepInclude(again.friends[0], { created_at: 7_000 })
      }))

    it.effect("blocking ends a friendship, withdraws the blocker's request, hides the blocked user's requests; unblocking drops them", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob, carol] = [freshUserId(), freshUserId(), freshUserId()]
        yield* befriend(alice, bob)
        const toCarol = (yield* sent(newRequest(alice, carol))).request

        assert.deepStrictEqual(yield* friends.block(alice, bob, 3_000), { changed: true, wereFriends: true })
        assert.deepStrictEqual(yield* friends.block(alice, bob, 3_001), { changed: false, wereFriends: false })
        assert.isTrue(yield* blocks(alice, bob))
        assert.isFalse(yield* blocks(bob, alice))
        const alices = yield* friends.changesSince(alice, 1)
        assert.deepStrictEqual([alices.version, entries(alices.friends)], [2, [[bob, "blocked"]]])
        const bobs = yield* friends.changesSince(bob, 1)
        assert.deepStrictEqual([bobs.version, entries(bobs.friends)], [2, [[alice, "friend", "removed"]]])
        assert.isFalse(yield* friends.unfriend(alice, bob, 3_002))
        assert.isFalse(yield* friends.unfriend(bob, alice, 3_002))

        // Bob's request looks sent to him, but Alice never sees it and cannot answer it.
        const hidden = yield* friends.request(newRequest(bob, alice, 4_000))
        assert.deepStrictEqual([hidden._tag, hidden._tag === "Sent" && hidden.delivered], ["Sent", false])
        const hiddenRequest = hidden._tag === "Sent" ? hidden.request : assert.fail("not sent")
        assert.deepStrictEqual(yield* friends.requests(bob), { incoming: [], outgoing: [hiddenRequest] })
        assert.deepStrictEqual((yield* friends.requests(alice)).incoming, [])
        assert.deepStrictEqual(yield* friends.accept(hiddenRequest.id, alice, 4_001), { _tag: "NotFound" })
        assert.deepStrictEqual(yield* friends.request(newRequest(bob, alice, 4_002)), { _tag: "AlreadyPending", request: hiddenRequest })
        assert.deepStrictEqual(yield* friends.request(newRequest(alice, bob)), { _tag: "RequesterBlocked" })

        // A block without a friendship: Alice's pending request to Carol is withdrawn.
        assert.deepStrictEqual(yield* friends.block(alice, carol, 5_000), { changed: true, wereFriends: false })
        assert.deepStrictEqual(yield* friends.accept(toCarol.id, carol, 5_001), {
          _tag: "NotPending",
          request: { ...toCarol, status: "rejected", updated_at: 5_000 }
        })
        assert.deepStrictEqual((yield* friends.changesSince(carol, 0)).friends, [])

        // Unblocking takes Bob off Alice's list and drops what he asked while blocked.
        assert.isTrue(yield* friends.unblock(alice, bob, 6_000))
        assert.isFalse(yield* friends.unblock(alice, bob, 6_001))
        assert.isFalse(yield* blocks(alice, bob))
        const after = yield* friends.changesSince(alice, 3)
        assert.deepStrictEqual([after.version, entries(after.friends)], [4, [[bob, "blocked", "removed"]]])
        assert.deepStrictEqual(yield* friends.requests(bob), { incoming: [], outgoing: [] })
        const fresh = yield* sent(newRequest(bob, alice, 7_000))
        assert.isTrue(fresh.delivered)
        assert.deepStrictEqual((yield* friends.requests(alice)).incoming, [fresh.request])
      }))

    it.effect("both may block each other; each block is its owner's, and unblocking one leaves the other", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob] = [freshUserId(), freshUserId()]
        assert.isFalse(yield* friends.unblock(alice, bob, 1))
        assert.isFalse(yield* friends.unblock(alice, alice, 1))
        assert.isFalse(yield* friends.unfriend(alice, alice, 1))
        assert.deepStrictEqual(yield* friends.block(alice, bob, 1), { changed: true, wereFriends: false })
        assert.deepStrictEqual(yield* friends.block(bob, alice, 2), { changed: true, wereFriends: false })
        assert.isTrue(yield* friends.unblock(alice, bob, 3))
        assert.isTrue(yield* blocks(bob, alice))
        assert.deepStrictEqual(entries((yield* friends.changesSince(bob, 0)).friends), [[alice, "blocked"]])
        assert.deepStrictEqual(entries((yield* friends.changesSince(alice, 0)).friends), [])
        assert.deepStrictEqual(yield* friends.request(newRequest(bob, alice)), { _tag: "RequesterBlocked" })
      }))

    it.effect("concurrent requests between two users leave one pending request, and concurrent answers answer it once", () =>
      Effect.gen(function*() {
        const friends = yield* FriendStore
        const [alice, bob] = [freshUserId(), freshUserId()]
        const outcomes = yield* Effect.forEach(
          Array.from({ length: 6 }, () => newRequest(alice, bob)),
          (request) => friends.request(request),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(outcomes.map((o) => o._tag).sort(), ["AlreadyPending", "AlreadyPending", "AlreadyPending", "AlreadyPending", "AlreadyPending", "Sent"])
        const ids = new Set(outcomes.map((o) => (o._tag === "Sent" || o._tag === "AlreadyPending" ? o.request.id : "")))
        assert.strictEqual(ids.size, 1)
        const [id] = [...ids] as Array<FriendRequestId>
        const answers = yield* Effect.forEach(
          [1, 2, 3, 4],
          (n) => (n % 2 === 0 ? friends.accept(id!, bob, 2_000) : friends.reject(id!, bob, 2_000)),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(answers.filter((a) => a._tag === "Answered").length, 1)
        assert.deepStrictEqual(answers.filter((a) => a._tag === "NotPending").length, 3)
        const version = (yield* friends.changesSince(alice, 0)).version
        assert.strictEqual(version, (yield* friends.changesSince(bob, 0)).version)
        assert.include([0, 1], version)
      }))
  })
