import { assert, describe, it } from "@effect/vitest"
import { GroupId, LocalId, UserId } from "@im/domain/Ids"
import { FANOUT_TOPIC, MESSAGES_TOPIC } from "@im/domain/Message"
import { FriendStore } from "@im/ports/FriendStore"
import { GroupStore } from "@im/ports/GroupStore"
import { type BusRecord, MessageBus } from "@im/ports/MessageBus"
import { PortError } from "@im/ports/PortError"
import { UserStore } from "@im/ports/UserStore"
import { recordingTracer } from "@im/observability/testing/RecordingTracer"
import * as TraceContext from "@im/observability/TraceContext"
import { recordingPusher } from "@im/pusher/testing/RecordingPusher"
import { Deferred, Effect, Exit, Fiber, Layer, Logger, Metric, Option, References, Ref, type Tracer } from "effect"
import { TestClock } from "effect/testing"
import { Chat, type SendRequest, serverIdOf } from "../src/Chat.ts"
import { FileMessages } from "../src/FileMessages.ts"

const alice = UserId.make("u_alice")
const bob = UserId.make("u_bob")
const carol = UserId.make("u_carol")
const team = GroupId.make("g_team")
const slow = GroupId.make("g_slow")

/** A bus that records what is published, and how many publish calls, and fails while `down` is set. */
class BusProbe {
  static readonly make = Effect.gen(function*() {
    const published = yield* Ref.make<Array<BusRecord & { topic: string }>>([])
    const calls = yield* Ref.make(0)
    const down = yield* Ref.make(false)
    const layer = Layer.succeed(MessageBus, MessageBus.of({
      publish: (topic, records) =>
        Effect.flatMap(Ref.get(down), (isDown) =>
          topic === dyingTopic.value
          ? Effect.die(`a broken publish to ${topic}`)
          : isDown
            ? Effect.fail(new PortError({ port: "MessageBus", operation: "publish", retryable: true }))
            : Effect.andThen(Ref.update(calls, (n) => n + 1), Ref.update(published, (all) => [...all, ...records.map((record) => ({ topic, ...record }))]))),
      consume: () => Effect.never,
      lag: () => Effect.succeed(0)
    }))
    return { published, calls, down, layer }
  })
}

const blockChecks: Array<number> = []
/** A topic whose publishes die, if set. */
const dyingTopic: { value?: string | undefined } = {}
const roleHooks = new Map<GroupId, Effect.Effect<void>>()
/** Run before each block check, if set (a wait). */
const hooks: { blocking?: Effect.Effect<void> | undefined } = {}

/** Holds every block check until `gate` is opened; `entered` once one is held. */
const holdBlockChecks = Effect.gen(function*() {
  const entered = yield* Deferred.make<void>()
  const gate = yield* Deferred.make<void>()
  hooks.blocking = Effect.andThen(Deferred.succeed(entered, undefined), Deferred.await(gate))
  return { entered, gate }
})
const userLookups: Array<number> = []

const withChat = <A, E>(
  f: (
    chat: Chat["Service"],
    probe: Effect.Success<typeof BusProbe.make>,
    pusher: ReturnType<typeof recordingPusher>,
    friends: FriendStore["Service"]
  ) => Effect.Effect<A, E>
) =>
  Effect.gen(function*() {
    const probe = yield* BusProbe.make
    const pusher = recordingPusher()
    const users = yield* Effect.provide(Effect.service(UserStore), UserStore.layerMemory)
    for (const id of [alice, bob]) {
      yield* users.create({ id, account: id, name: id, created_at: 0, password_hash: "x" })
    }
    const store = yield* Effect.provide(Effect.service(GroupStore), GroupStore.layerMemory)
    // A group's role lookup runs its hook first (a wait, a defect), if it has one.
    const groups = GroupStore.of({ ...store, role: (group, user) => Effect.andThen(roleHooks.get(group) ?? Effect.void, store.role(group, user)) })
    const friendStore = yield* Effect.provide(Effect.service(FriendStore), FriendStore.layerMemory)
    // Counts the block checks, which concurrent sends share.
    const friends = FriendStore.of({
      ...friendStore,
      blocking: (pairs) =>
        Effect.andThen(Effect.sync(() => void blockChecks.push(pairs.length)), Effect.andThen(hooks.blocking ?? Effect.void, friendStore.blocking(pairs)))
    })
    for (const id of [team, slow]) {
      yield* groups.create({ id, name: id, owner_id: alice, created_at: 0, join_approval: false }, [{ user_id: alice, role: "owner", joined_at: 0 }])
    }
    // Counts the receiver lookups, which concurrent sends share too.
    const countedUsers = UserStore.of({
      ...users,
      existing: (ids) => Effect.andThen(Effect.sync(() => void userLookups.push(ids.length)), users.existing(ids))
    })
    const chat = yield* Effect.provide(
      Effect.service(Chat),
      Chat.layer.pipe(Layer.provide([probe.layer, pusher.layer, Layer.succeed(UserStore, countedUsers), Layer.succeed(GroupStore, groups), Layer.succeed(FriendStore, friends), FileMessages.layerMemory]))
    )
    return yield* f(chat, probe, pusher, friends)
  })

const request = (overrides: Partial<SendRequest> = {}): SendRequest => ({
  sender_id: alice,
  local_id: LocalId.make("l-1"),
  receiver_id: bob,
  content_type: "text",
  content: "hello",
  create_time: 1,
  ...overrides
})

// A server without an OpenTelemetry endpoint runs with tracing off (Tracing.layerOff): chat then
// publishes the sends made together in one call per topic. With it on, each send is published
// with its own span. Both ways give every send the same answer.
describe.each([["tracing off", false], ["tracing on", true]] as const)("Chat.send, %s", (_, tracing) => {
  const withTracing: typeof withChat = (f) => withChat(f).pipe(Effect.withTracerEnabled(tracing))

  it.effect("publishes the message keyed by conversation, with server_id and send_time", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        yield* TestClock.setTime(5_000)
        const ack = yield* chat.send(request())
        assert.deepStrictEqual(ack, { server_id: serverIdOf(alice, LocalId.make("l-1")), send_time: 5_000 })
        const [published] = yield* Ref.get(probe.published)
        assert.strictEqual(published!.key, "u:u_alice:u_bob")
        assert.strictEqual(published!.topic, MESSAGES_TOPIC)
        assert.deepInclude(JSON.parse(published!.value), { sender_id: alice, receiver_id: bob, server_id: ack.server_id, send_time: 5_000 })
      })
    ))

  it.effect("a retried local_id gets the same ack and is published once; another sender's same local_id is another message", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const first = yield* chat.send(request())
        yield* TestClock.adjust(1_000)
        const again = yield* chat.send(request({ content: "edited in transit" }))
        const fromBob = yield* chat.send(request({ sender_id: bob, receiver_id: alice }))
        assert.deepStrictEqual(again, first)
        assert.notStrictEqual(fromBob.server_id, first.server_id)
        assert.strictEqual((yield* Ref.get(probe.published)).length, 2)
      })
    ))

  it.effect("refuses unknown receivers, groups the sender is not in, and frames naming both or neither", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const codes = yield* Effect.forEach(
          [
            request({ receiver_id: UserId.make("u_nobody") }),
            request({ receiver_id: undefined, group_id: GroupId.make("g_other") }),
            request({ sender_id: bob, receiver_id: undefined, group_id: team }),
            request({ group_id: team }),
            request({ receiver_id: undefined })
          ],
          (r) => Effect.flip(chat.send(r)).pipe(Effect.map((e) => e.code))
        )
        assert.deepStrictEqual(codes, ["receiver_not_found", "not_group_member", "not_group_member", "invalid_frame", "invalid_frame"])
        assert.strictEqual((yield* Ref.get(probe.published)).length, 0)
      })
    ))

  it.effect("counts what it accepts by kind, and what it refuses by code (a bus that is down: unavailable)", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        yield* chat.send(request())
        yield* chat.send(request({ local_id: LocalId.make("l-2"), receiver_id: undefined, group_id: team }))
        yield* Effect.flip(chat.send(request({ local_id: LocalId.make("l-3"), receiver_id: UserId.make("u_nobody") })))
        yield* Effect.flip(chat.send(request({ local_id: LocalId.make("l-4"), receiver_id: undefined })))
        yield* Effect.flip(chat.send(request({ local_id: LocalId.make("l-5"), receiver_id: carol })))
        yield* Ref.set(probe.down, true)
        yield* Effect.flip(chat.send(request({ local_id: LocalId.make("l-6") })))
        const counts = Object.fromEntries(
          (yield* Metric.snapshot)
            .filter((pair) => pair.id === "im_chat_accepted_total" || pair.id === "im_chat_rejected_total")
            .map((pair) => [`${pair.id}${JSON.stringify(pair.attributes)}`, (pair.state as { readonly count: number }).count])
        )
        assert.deepStrictEqual(counts, {
          "im_chat_accepted_total{\"kind\":\"single\"}": 1,
          "im_chat_accepted_total{\"kind\":\"group\"}": 1,
          "im_chat_rejected_total{\"code\":\"receiver_not_found\"}": 2,
          "im_chat_rejected_total{\"code\":\"invalid_frame\"}": 1,
          "im_chat_rejected_total{\"code\":\"unavailable\"}": 1
        })
      })
    ).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("a member's group message is published keyed by the group, on the fan-out topic", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const ack = yield* chat.send(request({ receiver_id: undefined, group_id: team }))
        const [published] = yield* Ref.get(probe.published)
        assert.strictEqual(published!.key, "g:g_team")
        assert.strictEqual(published!.topic, FANOUT_TOPIC)
        const message = JSON.parse(published!.value)
        assert.deepInclude(message, { kind: "group", group_id: team, sender_id: alice, server_id: ack.server_id })
        assert.isFalse("receiver_id" in message)
      })
    ))

  it.effect("a bus failure is `unavailable`, and a retry after recovery succeeds with the same server_id", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        yield* Ref.set(probe.down, true)
        const error = yield* Effect.flip(chat.send(request()))
        assert.strictEqual(error.code, "unavailable")
        yield* Ref.set(probe.down, false)
        const ack = yield* chat.send(request())
        assert.strictEqual(ack.server_id, serverIdOf(alice, LocalId.make("l-1")))
        assert.strictEqual((yield* Ref.get(probe.published)).length, 1)
      })
    ))

  it.effect("concurrent one-to-one sends ask the store about blocks together, each getting its own answer", () =>
    withTracing((chat, probe, _pusher, friends) =>
      Effect.gen(function*() {
        yield* friends.block(bob, alice, 1)
        blockChecks.length = 0
        const sends = [...Array(20).keys()].map((n) =>
          Effect.result(chat.send(request({ local_id: LocalId.make(`c-${n}`), ...(n % 2 === 0 ? {} : { sender_id: bob, receiver_id: alice }) })))
        )
        const results = yield* Effect.all(sends, { concurrency: "unbounded" })
        assert.deepStrictEqual(
          results.map((result) => result._tag === "Failure" ? result.failure.code : "ok"),
          [...Array(20).keys()].map((n) => n % 2 === 0 ? "blocked" : "ok")
        )
        assert.strictEqual(blockChecks.reduce((sum, n) => sum + n, 0), 20)
        assert.isBelow(blockChecks.length, 5, `${blockChecks.length} store calls for 20 concurrent sends`)
        assert.strictEqual((yield* Ref.get(probe.published)).length, 10)
      })
    ))

  it.effect("concurrent sends to receivers not seen yet look them up together, each getting its own answer", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        userLookups.length = 0
        // Bob exists; the others do not.
        const receivers = [...Array(20).keys()].map((n) => n % 4 === 0 ? bob : UserId.make(`ghost-${n}`))
        const results = yield* Effect.all(
          receivers.map((receiver_id, n) => Effect.result(chat.send(request({ local_id: LocalId.make(`u-${n}`), receiver_id })))),
          { concurrency: "unbounded" }
        )
        assert.deepStrictEqual(
          results.map((result) => result._tag === "Failure" ? result.failure.code : "ok"),
          receivers.map((receiver) => receiver === bob ? "ok" : "receiver_not_found")
        )
        assert.isBelow(userLookups.length, 5, `${userLookups.length} store calls for 20 concurrent sends`)
        assert.strictEqual((yield* Ref.get(probe.published)).length, 5)
        // A receiver found once is not looked up again.
        userLookups.length = 0
        yield* chat.send(request({ local_id: LocalId.make("u-again") }))
        assert.deepStrictEqual(userLookups, [])
      })
    ))

  it.effect("a one-to-one message to a user who blocked the sender is refused with `blocked`; the blocker may still send", () =>
    withTracing((chat, probe, _pusher, friends) =>
      Effect.gen(function*() {
        yield* friends.block(bob, alice, 1)
        const error = yield* Effect.flip(chat.send(request()))
        assert.strictEqual(error.code, "blocked")
        assert.deepStrictEqual(yield* Ref.get(probe.published), [])
        yield* chat.send(request({ sender_id: bob, receiver_id: alice, local_id: LocalId.make("l-2") }))
        yield* friends.unblock(bob, alice, 2)
        yield* chat.send(request())
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).sender_id), [bob, alice])
      })
    ))

  it.effect("sends made together are checked together and published together, one call per topic with tracing off, each with its own ack, in order", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        blockChecks.length = 0
        const sends = [...Array(12).keys()].map((n) =>
          request({ local_id: LocalId.make(`t-${n}`), ...(n % 3 === 2 ? { receiver_id: undefined, group_id: team } : {}) })
        )
        const acks = yield* Effect.forEach(sends, (send) => chat.send(send), { concurrency: "unbounded" })
        assert.deepStrictEqual(acks.map((ack) => ack.server_id), sends.map((send) => serverIdOf(send.sender_id, send.local_id)))
        assert.deepStrictEqual(blockChecks, [8])
        assert.strictEqual(yield* Ref.get(probe.calls), tracing ? 12 : 2)
        const published = yield* Ref.get(probe.published)
        const order = (topic: string) => published.filter((record) => record.topic === topic).map((record) => JSON.parse(record.value).local_id)
        assert.deepStrictEqual(order(MESSAGES_TOPIC), sends.filter((send) => send.group_id === undefined).map((send) => send.local_id))
        assert.deepStrictEqual(order(FANOUT_TOPIC), sends.filter((send) => send.group_id !== undefined).map((send) => send.local_id))
      })
    ))

  it.effect("a local_id sent twice at once is published once, and both sends get its ack", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const [first, second] = yield* Effect.all([chat.send(request()), chat.send(request({ content: "sent again" }))], { concurrency: "unbounded" })
        assert.deepStrictEqual(second, first)
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).content), ["hello"])
      })
    ))

  it.effect("a bus failure answers each send made together `unavailable` and remembers none of them", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const sends = [...Array(6).keys()].map((n) => request({ local_id: LocalId.make(`d-${n}`) }))
        yield* Ref.set(probe.down, true)
        // The batch logs as chat, not as the socket whose send opened it.
        const logged: Array<Record<string, unknown>> = []
        const logger = Logger.make(({ fiber }) => void logged.push({ ...fiber.getRef(References.CurrentLogAnnotations) }))
        const failed = yield* Effect.forEach(sends, (send) => Effect.flip(chat.send(send)), { concurrency: "unbounded" }).pipe(
          Effect.annotateLogs({ session: "socket-1" }),
          Effect.provideService(Logger.CurrentLoggers, new Set([logger]))
        )
        assert.deepStrictEqual(failed.map((error) => error.code), sends.map(() => "unavailable"))
        assert.isAbove(logged.length, 0)
        for (const annotations of logged) assert.deepStrictEqual(annotations, { service: "chat", sends: 6 })
        yield* Ref.set(probe.down, false)
        yield* Effect.forEach(sends, (send) => chat.send(send), { concurrency: "unbounded" })
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), sends.map((send) => send.local_id))
      })
    ))

  it.effect("a send whose check is slow holds up only itself, and interrupted before its publish publishes nothing", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        roleHooks.set(slow, Deferred.await(gate))
        const waiting = yield* Effect.forkChild(chat.send(request({ local_id: LocalId.make("slow-1"), receiver_id: undefined, group_id: slow })))
        const interrupted = yield* Effect.forkChild(chat.send(request({ local_id: LocalId.make("slow-2"), receiver_id: undefined, group_id: slow })))
        yield* Effect.yieldNow
        // Made while the group sends wait: answered and published at once.
        yield* chat.send(request({ local_id: LocalId.make("quick") }))
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), ["quick"])
        yield* Fiber.interrupt(interrupted)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(waiting)
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), ["quick", "slow-1"])
      }).pipe(Effect.ensuring(Effect.sync(() => roleHooks.clear())))
    ))

  it.effect("a send whose caller leaves while its batch's checks run is not published; the others are", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const { entered, gate } = yield* holdBlockChecks
        const leaving = yield* Effect.forkChild(chat.send(request({ local_id: LocalId.make("gone") })))
        const staying = yield* Effect.forkChild(chat.send(request({ local_id: LocalId.make("kept"), sender_id: bob, receiver_id: alice })))
        yield* Deferred.await(entered)
        yield* Fiber.interrupt(leaving)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(staying)
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), ["kept"])
        // Nor counted, as an interrupted send is not.
        const accepted = (yield* Metric.snapshot).filter((pair) => pair.id === "im_chat_accepted_total")
        assert.deepStrictEqual(accepted.map((pair) => (pair.state as { readonly count: number }).count), [1])
      }).pipe(Effect.ensuring(Effect.sync(() => void (hooks.blocking = undefined))))
    ).pipe(Effect.provideService(Metric.MetricRegistry, new Map())))

  it.effect("a group message made with one-to-one sends does not wait for their block check, nor fail with it", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const { entered, gate } = yield* holdBlockChecks
        const [single, group] = yield* Effect.all([
          Effect.forkChild(chat.send(request({ local_id: LocalId.make("h-1") }))),
          Effect.forkChild(chat.send(request({ local_id: LocalId.make("h-2"), receiver_id: undefined, group_id: team })))
        ])
        yield* Deferred.await(entered)
        yield* Fiber.join(group!)
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), ["h-2"])
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(single!)
        hooks.blocking = Effect.die("a broken block check")
        const [one, other] = yield* Effect.all([
          Effect.exit(chat.send(request({ local_id: LocalId.make("h-3") }))),
          Effect.exit(chat.send(request({ local_id: LocalId.make("h-4"), receiver_id: undefined, group_id: team })))
        ], { concurrency: "unbounded" })
        assert.isTrue(Exit.hasDies(one!))
        assert.isTrue(Exit.isSuccess(other!))
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), ["h-2", "h-1", "h-4"])
      }).pipe(Effect.ensuring(Effect.sync(() => void (hooks.blocking = undefined))))
    ))

  it.effect("a publish that dies fails its own topic's sends `unavailable`; the other topic's are published", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        dyingTopic.value = FANOUT_TOPIC
        const [single, group] = yield* Effect.all(
          [chat.send(request({ local_id: LocalId.make("p-1") })), chat.send(request({ local_id: LocalId.make("p-2"), receiver_id: undefined, group_id: team }))].map(Effect.exit),
          { concurrency: "unbounded" }
        )
        assert.isTrue(Exit.isSuccess(single!))
        assert.strictEqual(Exit.isFailure(group!) ? Option.getOrUndefined(Exit.findErrorOption(group))?.code : "ok", "unavailable")
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id), ["p-1"])
      }).pipe(Effect.ensuring(Effect.sync(() => void (dyingTopic.value = undefined))))
    ))

  it.effect("a group message sent again gets its first ack without its group looked up again (a sender who left since gets it too), and is published once", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        const first = yield* chat.send(request({ local_id: LocalId.make("g-1"), receiver_id: undefined, group_id: team }))
        roleHooks.set(team, Effect.die("a retry's group is not looked up again"))
        const again = yield* chat.send(request({ local_id: LocalId.make("g-1"), receiver_id: undefined, group_id: team }))
        assert.deepStrictEqual(again, first)
        assert.strictEqual((yield* Ref.get(probe.published)).length, 1)
      }).pipe(Effect.ensuring(Effect.sync(() => roleHooks.clear())))
    ))

  it.effect("a send whose check dies fails alone; the sends made with it are published", () =>
    withTracing((chat, probe) =>
      Effect.gen(function*() {
        roleHooks.set(slow, Effect.die("broken store"))
        const [broken, ...rest] = yield* Effect.forEach(
          [request({ local_id: LocalId.make("b-0"), receiver_id: undefined, group_id: slow }), request({ local_id: LocalId.make("b-1") }), request({ local_id: LocalId.make("b-2"), receiver_id: undefined, group_id: team })],
          (send) => Effect.exit(chat.send(send)),
          { concurrency: "unbounded" }
        )
        assert.isTrue(Exit.hasDies(broken!))
        assert.isTrue(rest.every(Exit.isSuccess))
        assert.deepStrictEqual((yield* Ref.get(probe.published)).map((record) => JSON.parse(record.value).local_id).sort(), ["b-1", "b-2"])
      }).pipe(Effect.ensuring(Effect.sync(() => roleHooks.clear())))
    ))
})

describe("Chat.send, traced", () => {
  it.effect("each send made together has its own publish span, a child of its send's, and its record carries that span's trace context", () =>
    withChat((chat, probe) =>
      Effect.gen(function*() {
        const { recording, spans } = recordingTracer()
        const sends = [...Array(5).keys()].map((n) => request({ local_id: LocalId.make(`s-${n}`) }))
        yield* Effect.forEach(sends, (send) => chat.send(send).pipe(Effect.withSpan(`frame ${send.local_id}`)), { concurrency: "unbounded" }).pipe(
          Effect.withTracer(recording)
        )
        const parentOf = (span: Tracer.Span) => Option.getOrUndefined(span.parent) as Tracer.Span | undefined
        // The batch has a span of its own, a root linked to each send's.
        const batches = spans.filter((span) => span.name === "Chat.sendAll")
        assert.isAbove(batches.length, 0)
        for (const batch of batches) assert.isUndefined(parentOf(batch))
        assert.sameMembers(
          batches.flatMap((batch) => batch.links.map((link) => link.span.spanId)),
          spans.filter((span) => span.name === "Chat.send").map((span) => span.spanId)
        )
        const records = yield* Ref.get(probe.published)
        assert.strictEqual(records.length, sends.length)
        for (const record of records) {
          const publish = spans.find((span) => record.headers?.[TraceContext.TRACEPARENT] === TraceContext.traceparentOf(span))
          assert.strictEqual(publish?.name, "Chat.publish")
          assert.strictEqual(publish?.attributes.get("server_id"), JSON.parse(record.value).server_id)
          const send = publish && parentOf(publish)
          assert.strictEqual(send?.name, "Chat.send")
          assert.strictEqual(send && parentOf(send)?.name, `frame ${JSON.parse(record.value).local_id}`)
        }
      })
    ))
})

describe("Chat.notify", () => {
  it.effect("publishes a notice to its recipients, keyed and placed with the pair's chat or the group, with an id fixed by the event", () =>
    withChat((chat, probe) =>
      Effect.gen(function*() {
        const first = yield* chat.notify({ sender_id: alice, to: [bob, bob], event_id: "e1", event: { type: "friend_request", note: "hi" } })
        const again = yield* chat.notify({ sender_id: alice, to: [bob], event_id: "e1", event: { type: "friend_request", note: "hi" } })
        assert.strictEqual(again.server_id, first.server_id)
        yield* chat.notify({ sender_id: alice, to: [alice, bob], group_id: team, event_id: "e2", event: { type: "member_joined" } })
        // To both sides of a pair (a recall), to the sender alone, to two others.
        yield* chat.notify({ sender_id: alice, to: [bob, alice], event_id: "e3", event: { type: "message_recalled" } })
        yield* chat.notify({ sender_id: alice, to: [alice], event_id: "e4", event: { type: "friend_unblocked" } })
        yield* chat.notify({ sender_id: alice, to: [bob, carol, alice], event_id: "e5", event: { type: "friend_request" } })
        const published = yield* Ref.get(probe.published)
        assert.deepStrictEqual(published.map((record) => [record.key, record.topic]), [
          [`u:${alice}:${bob}`, MESSAGES_TOPIC],
          [`u:${alice}:${bob}`, MESSAGES_TOPIC],
          [`g:${team}`, FANOUT_TOPIC],
          [`u:${alice}:${bob}`, MESSAGES_TOPIC],
          [`u:${alice}:${alice}`, MESSAGES_TOPIC],
          [`n:${alice}`, FANOUT_TOPIC]
        ])
        const notice = JSON.parse(published[0]!.value)
        assert.deepStrictEqual(
          [notice.kind, notice.content_type, notice.sender_id, notice.to, JSON.parse(notice.content)],
          ["notice", "notice", alice, [bob], { type: "friend_request", note: "hi" }]
        )
      })
    ))

  it.effect("refuses a notice to nobody, and is `unavailable` while the bus is down", () =>
    withChat((chat, probe) =>
      Effect.gen(function*() {
        assert.strictEqual((yield* Effect.flip(chat.notify({ sender_id: alice, to: [], event_id: "e", event: { type: "x" } }))).code, "invalid_frame")
        yield* Ref.set(probe.down, true)
        assert.strictEqual((yield* Effect.flip(chat.notify({ sender_id: alice, to: [bob], event_id: "e", event: { type: "x" } }))).code, "unavailable")
        assert.deepStrictEqual(yield* Ref.get(probe.published), [])
      })
    ))
})

describe("Chat.typing", () => {
  it.effect("signals the receiver, or the group's other members, and publishes nothing", () =>
    withChat((chat, probe, pusher) =>
      Effect.gen(function*() {
        yield* chat.typing({ sender_id: alice, receiver_id: bob })
        yield* chat.typing({ sender_id: alice, group_id: team })
        assert.deepStrictEqual(pusher.signals, [
          { users: [bob], frame: { type: "typing", sender_id: alice, receiver_id: bob } },
          { users: [], frame: { type: "typing", sender_id: alice, group_id: team } }
        ])
        assert.deepStrictEqual(yield* Ref.get(probe.published), [])
      })
    ))

  it.effect("refuses what a send would refuse, signalling nobody", () =>
    withChat((chat, _probe, pusher) =>
      Effect.gen(function*() {
        const codes = [
          yield* Effect.flip(chat.typing({ sender_id: bob, group_id: team })),
          yield* Effect.flip(chat.typing({ sender_id: alice, receiver_id: UserId.make("u_nobody") })),
          yield* Effect.flip(chat.typing({ sender_id: alice, receiver_id: bob, group_id: team })),
          yield* Effect.flip(chat.typing({ sender_id: alice }))
        ].map((error) => error.code)
        assert.deepStrictEqual(codes, ["not_group_member", "receiver_not_found", "invalid_frame", "invalid_frame"])
        assert.deepStrictEqual(pusher.signals, [])
      })
    ))
})
