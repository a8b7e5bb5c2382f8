import { flakyInbox } from "@im/ports/testing/FlakyInbox"
import { numberedMessage } from "@im/ports/testing/Fixtures"
import { Db } from "@im/db/Db"
import { ServiceUnavailable } from "@im/domain/Errors"
import { GroupId, UserId } from "@im/domain/Ids"
import { busTopicOf, conversationKey, type Delivery, FANOUT_TOPIC, type Message, MESSAGES_TOPIC } from "@im/domain/Message"
import { GroupStore } from "@im/ports/GroupStore"
import { ConversationStore } from "@im/ports/ConversationStore"
import { HistoryStore } from "@im/ports/HistoryStore"
import { type InboxRef, InboxStore } from "@im/ports/InboxStore"
import { type ConsumedRecord, MessageBus } from "@im/ports/MessageBus"
import { PortError } from "@im/ports/PortError"
import { SeqStore } from "@im/ports/SeqStore"
import { recordingVital } from "@im/ports/testing/Vitals"
import { Vital } from "@im/ports/Vital"
import { Pusher } from "@im/pusher/Pusher"
import { Cause, ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Schedule, Scope } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { coalesceBatches, Consumer } from "../src/Consumer.ts"

const users = ["u_a", "u_b", "u_c", "u_d"].map((id) => UserId.make(id))

const message = numberedMessage

const record = (value: Message | string, offset: number): ConsumedRecord => ({
  topic: "im.messages",
  partition: 0,
  offset,
  key: typeof value === "string" ? "bad" : conversationKey(value),
  value: typeof value === "string" ? value : JSON.stringify(value)
})

/** A consumer over memory stores; pushes are recorded instead of sent. */
const setup = (failures: ReadonlyArray<boolean> = [], maxEntries?: number) => {
  const pushed: Array<Delivery> = []
  const appends: Array<number> = []
  const layer = Layer.effect(Consumer, Consumer.make(maxEntries)).pipe(
    Layer.provideMerge(Layer.succeed(Pusher, Pusher.of({ push: (batch) => Effect.sync(() => void pushed.push(...batch)), signal: () => Effect.void }))),
    Layer.provideMerge(Db.layer),
    Layer.provideMerge(
      Layer.mergeAll(HistoryStore.layerMemory, ConversationStore.layerMemory, flakyInbox(failures, { appends }), SeqStore.layerMemory, GroupStore.layerMemory)
    )
  )
  return { layer, pushed, appends }
}

const inboxOf = (user: UserId) =>
  Effect.flatMap(Effect.service(Db), (db) => db.pull({ user, after: 0, limit: 1000 }))

/** A group of `size` members `u_member_<i>` (the first its owner), made in the GroupStore by `create`. */
const testGroup = (id: string, size: number) => {
  const group = GroupId.make(id)
  const members = Array.from({ length: size }, (_, i) => UserId.make(`u_member_${i}`))
  const create = Effect.flatMap(Effect.service(GroupStore), (groups) =>
    groups.create(
      { id: group, name: id, owner_id: members[0]!, created_at: 0, join_approval: false },
      members.map((user_id, i) => ({ user_id, role: i === 0 ? "owner" as const : "member" as const, joined_at: i }))
    ))
  /** Message `n` from `sender` to the group. */
  const groupMessage = (n: number, sender: UserId): Message => {
    const { receiver_id: _, ...rest } = message(n, sender, sender)
    return { ...rest, kind: "group", group_id: group }
  }
  return { members, create, message: groupMessage }
}

describe("Consumer", () => {
  it("stores one entry for the receiver and one for the sender, each under its next seq, then pushes them", async () => {
    const { layer, pushed } = setup()
    const [a, b] = [users[0]!, users[1]!]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch([record(message(1, a, b), 0), record(message(2, b, a), 1)])
      return { a: yield* inboxOf(a), b: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.a.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_2"]])
    expect(result.b.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_2"]])
    expect(pushed.map((d) => `${d.user_id}:${d.seq}`).sort()).toEqual(["u_a:1", "u_a:2", "u_b:1", "u_b:2"])
  })

  it("a replayed batch stores nothing new and pushes the same entries again, under their stored seqs", async () => {
    const { layer, pushed } = setup()
    const [a, b] = [users[0]!, users[1]!]
    const batch = [record(message(1, a, b), 0), record(message(1, a, b), 1), record(message(2, a, b), 2)]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch(batch)
      yield* consumer.handleBatch(batch)
      const seqs = yield* SeqStore
      return { b: yield* inboxOf(b), spent: yield* seqs.current(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.b.entries.map((e) => e.seq)).toEqual([1, 2])
    // The seqs are taken while the stored entries are looked up; the replay's two are given back.
    expect(result.spent).toBe(2)
    expect(pushed.filter((d) => d.user_id === b).map((d) => d.seq)).toEqual([1, 2, 1, 2])
  })

  it("a replay whose numbers cannot be given back still stores and pushes; they stay skipped", async () => {
    const { layer, pushed } = setup()
    const [a, b] = [users[0]!, users[1]!]
    const batch = [record(message(1, a, b), 0), record(message(2, a, b), 1)]
    const refusing = Layer.effect(SeqStore, Effect.map(Effect.service(SeqStore), (seqs) =>
      SeqStore.of({ ...seqs, giveBack: () => Effect.fail(new PortError({ port: "SeqStore", operation: "giveBack", retryable: true })) })))
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch(batch)
      yield* consumer.handleBatch(batch)
      yield* consumer.handleBatch([record(message(3, a, b), 2)])
      const seqs = yield* SeqStore
      return { b: yield* inboxOf(b), spent: yield* seqs.current(b) }
    }).pipe(Effect.provide(Layer.effect(Consumer, Consumer.make()).pipe(Layer.provide(refusing), Layer.provideMerge(layer)))))
    expect(result.b.entries.map((e) => e.seq)).toEqual([1, 2, 5])
    expect(result.b.through).toBe(5)
    expect(result.spent).toBe(5)
    expect(pushed.filter((d) => d.user_id === b).map((d) => d.seq)).toEqual([1, 2, 1, 2, 5])
  })

  it("skips an undecodable record and stores the rest", async () => {
    const { layer } = setup()
    const [a, b] = [users[0]!, users[1]!]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch([record("{not json", 0), record(`{"server_id":1}`, 1), record(message(3, a, b), 2)])
      return yield* inboxOf(b)
    }).pipe(Effect.provide(layer)))
    expect(result.entries.map((e) => e.message.server_id)).toEqual(["m_3"])
  })

  it("a failed save is not acknowledged, and its retry stores each entry once", async () => {
    const { layer } = setup([true])
    const [a, b] = [users[0]!, users[1]!]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      const first = yield* Effect.flip(consumer.handleBatch([record(message(1, a, b), 0)]))
      yield* consumer.handleBatch([record(message(1, a, b), 0)])
      return { first, b: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.first._tag).toBe("ServiceUnavailable")
    // The failed attempt spent seq 1; the pull answer covers it, so no client waits for it.
    expect(result.b.entries.map((e) => e.seq)).toEqual([2])
    expect(result.b.through).toBe(2)
  })

  it("a message to a 200-member group lands once in every member's inbox, with consecutive seqs per member", async () => {
    const { layer, pushed } = setup()
    const { create, members, message: groupMessage } = testGroup("g_team", 200)
    const result = await Effect.runPromise(Effect.gen(function*() {
      yield* create
      const consumer = yield* Consumer
      // A 1:1 message first, so that member 1's seqs start above 1; then two group messages,
      // one of them replayed.
      yield* consumer.handleBatch([record(message(1, members[1]!, members[2]!), 0), record(groupMessage(2, members[0]!), 1)])
      yield* consumer.handleBatch([record(groupMessage(2, members[0]!), 1), record(groupMessage(3, members[5]!), 2)])
      return yield* Effect.forEach(members, inboxOf)
    }).pipe(Effect.provide(layer)))
    for (const [i, page] of result.entries()) {
      const held = page.entries.map((e) => [e.seq, e.message.server_id])
      const offset = i === 1 || i === 2 ? 1 : 0
      expect(held.slice(offset)).toEqual([[1 + offset, "m_2"], [2 + offset, "m_3"]])
    }
    // Each entry pushed once per batch it was in: m_2 twice (replayed), m_3 once.
    expect(pushed.filter((d) => d.message.server_id === "m_3")).toHaveLength(200)
  })

  it("stores a batch in steps of at most maxEntries entries; a step that failed is retried and the steps before it keep their seqs", async () => {
    // Steps of at most 450 entries: one message to the group of 200 is 200 entries, so two fit a step.
    // The second step's append fails once.
    const { appends, layer, pushed } = setup([false, true], 450)
    const { create, members, message: groupMessage } = testGroup("g_team", 200)
    const batch = [1, 2, 3, 4, 5].map((n) => record(groupMessage(n, members[n]!), n))
    const result = await Effect.runPromise(Effect.gen(function*() {
      yield* create
      const consumer = yield* Consumer
      const first = yield* Effect.flip(consumer.handleBatch(batch))
      yield* consumer.handleBatch(batch)
      return { first, inboxes: yield* Effect.forEach(members, inboxOf) }
    }).pipe(Effect.provide(layer)))
    expect(result.first._tag).toBe("ServiceUnavailable")
    // Attempt 1: the first step (m_1, m_2) stored, the second failed. Attempt 2: the first step
    // found stored (nothing to append), then m_3 + m_4, then m_5.
    expect(appends).toEqual([400, 400, 400, 200])
    for (const page of result.inboxes) {
      const held = page.entries.map((e) => e.message.server_id)
      expect(held).toEqual(["m_1", "m_2", "m_3", "m_4", "m_5"])
      // The failed step spent seqs 3 and 4 of every member (its save may have gone through: they
      // are not given back); the retry of the stored first step took 5 and 6 while its entries
      // were found stored, and gave them back; the rest are consecutive.
      expect(page.entries.map((e) => e.seq)).toEqual([1, 2, 5, 6, 7])
      expect(page.through).toBe(7)
    }
    // Pushed as stored: the first step on both attempts.
    expect(pushed.filter((d) => d.message.server_id === "m_1")).toHaveLength(400)
    expect(pushed.filter((d) => d.message.server_id === "m_5")).toHaveLength(200)
  })

  it("a message with more participants than maxEntries is a step of its own", async () => {
    const { appends, layer } = setup([], 3)
    const { create, members, message: groupMessage } = testGroup("g_small", 5)
    const inboxes = await Effect.runPromise(Effect.gen(function*() {
      yield* create
      const consumer = yield* Consumer
      yield* consumer.handleBatch([
        record(message(6, members[1]!, members[2]!), 0),
        record(groupMessage(7, members[0]!), 1),
        record(message(8, members[3]!, members[4]!), 2)
      ])
      return yield* Effect.forEach(members, inboxOf)
    }).pipe(Effect.provide(layer)))
    expect(appends).toEqual([2, 5, 2])
    expect(inboxes.map((page) => page.entries.map((e) => e.message.server_id))).toEqual([
      ["m_7"],
      ["m_6", "m_7"],
      ["m_6", "m_7"],
      ["m_7", "m_8"],
      ["m_7", "m_8"]
    ])
  })

  it("property: whatever the batching, steps, replays and transient failures, every participant holds every message once, in send order", async () => {
    const scenario = fc.record({
      maxEntries: fc.integer({ min: 1, max: 12 }),
      sends: fc.array(fc.tuple(fc.nat(3), fc.nat(3)), { minLength: 1, maxLength: 60 }),
      cuts: fc.array(fc.nat(59), { maxLength: 10 }),
      replays: fc.array(fc.nat(20), { maxLength: 6 }),
      failures: fc.array(fc.boolean(), { maxLength: 30 })
    })
    await fc.assert(
      fc.asyncProperty(scenario, async ({ cuts, failures, maxEntries, replays, sends }) => {
        const messages = sends.map(([s, r], index) => message(index, users[s]!, users[r]!))
        const records = messages.map((m, offset) => record(m, offset))
        const bounds = [...new Set([0, ...cuts.filter((c) => c < records.length), records.length])].sort((x, y) => x - y)
        const batches = bounds.slice(1).map((end, i) => records.slice(bounds[i], end))
        // A replay re-delivers an earlier batch after a later one, as after a crash before commit.
        const schedule = batches.flatMap((batch, i) => replays.includes(i) && i > 0 ? [batch, batches[i - 1]!] : [batch])
        const { layer } = setup(failures, maxEntries)
        const inboxes = await Effect.runPromise(Effect.gen(function*() {
          const consumer = yield* Consumer
          for (const batch of schedule) {
            // The bus hands a failed batch over again until it succeeds.
            yield* consumer.handleBatch(batch).pipe(Effect.retry({ times: 50 }))
          }
          return yield* Effect.forEach(users, inboxOf)
        }).pipe(Effect.provide(layer)))
        users.forEach((user, u) => {
          const expected = messages.filter((m) => m.sender_id === user || m.receiver_id === user).map((m) => m.server_id)
          const page = inboxes[u]!
          const held = page.entries.map((e) => e.message.server_id)
          // No loss, no duplicates, in publish order (one partition: the order of the log).
          expect(held).toEqual(expected)
          const seqs = page.entries.map((e) => e.seq)
          expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
          expect(page.through).toBe(seqs.at(-1) ?? 0)
          // Numbers are skipped only by a failure or a replay (whose seqs are taken before its
          // entries are found stored): without either, each inbox is 1, 2, 3, …
          if (!failures.includes(true) && schedule.length === batches.length) expect(seqs).toEqual(seqs.map((_, i) => i + 1))
        })
      }),
      { numRuns: 150 }
    )
  })
  it("gives a notice one entry in each named user's inbox (not the sender's), stores and pushes it without its recipient list, once on replay", async () => {
    const { layer, pushed } = setup()
    const [a, b, c, d] = users as [UserId, UserId, UserId, UserId]
    const { receiver_id: _, ...base } = message(9, a, b)
    const notice: Message = {
      ...base,
      kind: "notice",
      to: [b, c, b],
      content_type: "notice",
      content: JSON.stringify({ type: "friend_request", request_id: "r1" })
    }
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch([record(message(1, c, d), 0), record(notice, 1)])
      yield* consumer.handleBatch([record(notice, 1)])
      return { a: yield* inboxOf(a), b: yield* inboxOf(b), c: yield* inboxOf(c), d: yield* inboxOf(d) }
    }).pipe(Effect.provide(layer)))
    expect(result.a.entries).toEqual([])
    expect(result.b.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_9"]])
    expect(result.c.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_9"]])
    expect(result.d.entries.map((e) => e.message.server_id)).toEqual(["m_1"])
    expect(result.b.entries[0]!.message).not.toHaveProperty("to")
    expect(result.b.entries[0]!.message).toMatchObject({ kind: "notice", content_type: "notice", sender_id: a })
    expect(pushed.filter((p) => p.message.server_id === "m_9").every((p) => !("to" in p.message))).toBe(true)
    expect(pushed.filter((p) => p.message.server_id === "m_9").map((p) => `${p.user_id}:${p.seq}`).sort()).toEqual(
      ["u_b:1", "u_b:1", "u_c:2", "u_c:2"]
    )
  })
  it("keeps each participant's conversations: unread entries from others, read through their own; a replay counts nothing twice", async () => {
    const { layer } = setup([false, true])
    const [a, b, c] = users as [UserId, UserId, UserId]
    const batch = [record(message(1, a, b), 0), record(message(2, a, b), 1), record(message(3, b, a), 2), record(message(4, a, b), 3), record(message(5, c, b), 4)]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch(batch.slice(0, 2))
      // The second save fails once (after nothing was stored): the bus redelivers the batch.
      yield* Effect.flip(consumer.handleBatch(batch.slice(2)))
      yield* consumer.handleBatch(batch)
      yield* consumer.handleBatch(batch)
      const conversations = yield* ConversationStore
      return {
        a: yield* conversations.list(a),
        b: yield* conversations.list(b),
        inboxA: yield* inboxOf(a),
        inboxB: yield* inboxOf(b)
      }
    }).pipe(Effect.provide(layer)))
    const seqOf = (page: typeof result.inboxA, id: string) => page.entries.find((e) => e.message.server_id === id)!.seq
    const summary = (list: ReadonlyArray<{ conversation: string; last_seq: number; read_seq: number; unread: number }>) =>
      list.map((c) => [c.conversation, c.last_seq, c.read_seq, c.unread])
    expect(summary(result.b)).toEqual([
      [`u:${c}`, seqOf(result.inboxB, "m_5"), 0, 1],
      [`u:${a}`, seqOf(result.inboxB, "m_4"), seqOf(result.inboxB, "m_3"), 1]
    ])
    expect(summary(result.a)).toEqual([[`u:${b}`, seqOf(result.inboxA, "m_4"), seqOf(result.inboxA, "m_4"), 0]])
  })

  /**
   * A consumer over memory stores whose every save first runs `gate` with the entries it is
   * given, and every lookup of stored entries `lookupGate`; the saves' entries and the pushes
   * are recorded, in the order they happen.
   */
  const gatedSetup = (
    gate: (entries: ReadonlyArray<InboxRef>) => Effect.Effect<void, ServiceUnavailable>,
    lookupGate: Effect.Effect<void> = Effect.void,
    maxEntries?: number
  ) => {
    const saved: Array<ReadonlyArray<InboxRef>> = []
    const pushed: Array<Delivery> = []
    const gated = Layer.effect(Db, Effect.map(Effect.service(Db), (db) =>
      Db.of({
        ...db,
        existing: (keys) => Effect.andThen(lookupGate, db.existing(keys)),
        save: (messages, entries, replayed) =>
          gate(entries).pipe(
            Effect.andThen(db.save(messages, entries, replayed)),
            Effect.tap(() => Effect.sync(() => void saved.push(entries)))
          )
      })))
    const layer = Layer.effect(Consumer, Consumer.make(maxEntries)).pipe(
      Layer.provideMerge(Layer.succeed(Pusher, Pusher.of({ push: (batch) => Effect.sync(() => void pushed.push(...batch)), signal: () => Effect.void }))),
      Layer.provideMerge(gated.pipe(Layer.provideMerge(Db.layer))),
      Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, GroupStore.layerMemory))
    )
    return { layer, saved, pushed }
  }

  /** Each user's seqs in the order they were saved, and in the order they were pushed. */
  const seqOrders = (saved: ReadonlyArray<ReadonlyArray<InboxRef>>, pushed: ReadonlyArray<Delivery>) => {
    const orders = (refs: ReadonlyArray<{ readonly user_id: UserId; readonly seq: number }>) => {
      const byUser = new Map<UserId, Array<number>>()
      for (const { seq, user_id } of refs) byUser.set(user_id, [...(byUser.get(user_id) ?? []), seq])
      return byUser
    }
    return { saved: orders(saved.flat()), pushed: orders(pushed) }
  }
  const ascending = (seqs: ReadonlyArray<number>) => seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]!)

  /**
   * A save gate (gatedSetup) that holds the first save: `saving` is done once it is held, and
   * after `release` it goes on with `then` (default: the save itself). The other saves go at once.
   */
  const firstSaveHeld = (then: Effect.Effect<void, ServiceUnavailable> = Effect.void) => {
    const saving = Deferred.makeUnsafe<void>()
    const release = Deferred.makeUnsafe<void>()
    let saves = 0
    const gate = () =>
      Effect.suspend(() =>
        ++saves === 1 ? Deferred.succeed(saving, undefined).pipe(Effect.andThen(Deferred.await(release)), Effect.andThen(then)) : Effect.void
      )
    return { saving, release, gate }
  }

  /** Whether `user`'s seqs reach `seq` within 2 seconds. */
  const seqsReach = (user: UserId, seq: number) =>
    Effect.flatMap(Effect.service(SeqStore), (seqs) =>
      seqs.current(user).pipe(
        Effect.repeat({ until: (current) => current === seq, schedule: Schedule.spaced("2 millis") }),
        Effect.timeout("2 seconds"),
        Effect.option,
        Effect.map((reached) => reached._tag === "Some")
      ))

  /**
   * Two calls of one step each, both to b: the first (a's message) held in its save (`saving`
   * has fired), then the second (c's, from another partition) started.
   */
  const firstHeldThenSecond = (a: UserId, b: UserId, c: UserId, saving: Deferred.Deferred<void>) =>
    Effect.gen(function*() {
      const consumer = yield* Consumer
      const first = yield* Effect.forkChild(consumer.handleBatch([record(message(1, a, b), 0)]))
      yield* Deferred.await(saving)
      const second = yield* Effect.forkChild(consumer.handleBatch([{ ...record(message(2, c, b), 0), partition: 1 }]))
      return { consumer, first, second }
    })

  it("of two calls at once, the second takes its seqs while the first saves, and saves and pushes after it, in seq order", async () => {
    const [a, b, c] = users as [UserId, UserId, UserId]
    const { gate, release, saving } = firstSaveHeld()
    const { layer, pushed, saved } = gatedSetup(gate)
    const result = await Effect.runPromise(Effect.gen(function*() {
      const { first, second } = yield* firstHeldThenSecond(a, b, c, saving)
      // b's seq 2 is the second call's: taken while the first save is held.
      const taken = yield* seqsReach(b, 2)
      yield* Effect.sleep("30 millis")
      const savesWhileHeld = saved.length
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      return { taken, savesWhileHeld, inbox: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.taken).toBe(true)
    expect(result.savesWhileHeld).toBe(0)
    expect(result.inbox.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_2"]])
    const orders = seqOrders(saved, pushed)
    expect(orders.saved.get(b)).toEqual([1, 2])
    expect(orders.pushed.get(b)).toEqual([1, 2])
  })

  it.each(["fails", "is interrupted"])("a step whose save %s lets the next step save", async (outcome) => {
    const [a, b, c] = users as [UserId, UserId, UserId]
    // The first save waits for `release`, then fails (or waits until it is interrupted).
    const { gate, release, saving } = firstSaveHeld(outcome === "fails" ? Effect.fail(new ServiceUnavailable({ message: "refused" })) : Effect.never)
    const { layer } = gatedSetup(gate)
    const result = await Effect.runPromise(Effect.gen(function*() {
      const { first, second } = yield* firstHeldThenSecond(a, b, c, saving)
      yield* Effect.sleep("20 millis")
      if (outcome === "fails") yield* Deferred.succeed(release, undefined)
      else yield* Fiber.interrupt(first)
      const firstExit = yield* Fiber.await(first)
      yield* Fiber.join(second).pipe(Effect.timeout("2 seconds"))
      return { firstExit, inbox: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(Exit.isFailure(result.firstExit)).toBe(true)
    expect(result.inbox.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[2, "m_2"]])
  })

  it("property: calls at once, in steps, whatever their lookups' and saves' delays, save and push each user's entries in seq order", async () => {
    const scenario = fc.record({
      calls: fc.array(fc.array(fc.tuple(fc.nat(3), fc.nat(3)), { minLength: 1, maxLength: 6 }), { minLength: 2, maxLength: 6 }),
      delays: fc.array(fc.nat(3), { minLength: 6, maxLength: 6 }),
      // Steps of a few entries: a call of several steps, and the calls' steps taking turns.
      maxEntries: fc.integer({ min: 1, max: 4 })
    })
    await fc.assert(
      fc.asyncProperty(scenario, async ({ calls, delays, maxEntries }) => {
        let waits = 0
        const delay = Effect.suspend(() => Effect.sleep(`${delays[waits++ % delays.length]!} millis`))
        const { layer, pushed, saved } = gatedSetup(() => delay, delay, maxEntries)
        let n = 0
        const batches = calls.map((sends, partition) => sends.map(([s, r], offset) => ({ ...record(message(n++, users[s]!, users[r]!), offset), partition })))
        const inboxes = await Effect.runPromise(Effect.gen(function*() {
          const consumer = yield* Consumer
          yield* Effect.forEach(batches, (batch) => consumer.handleBatch(batch), { concurrency: "unbounded", discard: true })
          return yield* Effect.forEach(users, inboxOf)
        }).pipe(Effect.provide(layer)))
        const orders = seqOrders(saved, pushed)
        users.forEach((user, u) => {
          expect(ascending(orders.saved.get(user) ?? [])).toBe(true)
          expect(ascending(orders.pushed.get(user) ?? [])).toBe(true)
          // Every call's entries stored once, with nothing skipped: no save failed.
          const seqs = inboxes[u]!.entries.map((e) => e.seq)
          expect(seqs).toEqual(seqs.map((_, i) => i + 1))
        })
      }),
      { numRuns: 60 }
    )
  }, 60_000)

  it("a step interrupted while it waits for its turn to save lets the steps after it take seqs and save", async () => {
    const [a, b, c, d] = users as [UserId, UserId, UserId, UserId]
    const { gate, release, saving } = firstSaveHeld()
    const { layer } = gatedSetup(gate)
    const result = await Effect.runPromise(Effect.gen(function*() {
      // The second takes its seqs (c's first) and waits for the first save, holding the turn to take.
      const { consumer, first, second } = yield* firstHeldThenSecond(a, b, c, saving)
      const secondTook = yield* seqsReach(c, 1)
      yield* Fiber.interrupt(second)
      const third = yield* Effect.forkChild(consumer.handleBatch([{ ...record(message(3, d, b), 0), partition: 2 }]))
      // The third takes its seqs while the first save is still held.
      const taken = yield* seqsReach(d, 1)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(first)
      yield* Fiber.join(third).pipe(Effect.timeout("2 seconds"))
      return { secondTook, taken, inbox: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.secondTook).toBe(true)
    expect(result.taken).toBe(true)
    // b's seq 2 was taken by the interrupted step and stays unused.
    expect(result.inbox.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [3, "m_3"]])
  })

  it("two consumers handed the same batch (a rebalance) push every entry under the seq it is stored with, and count it once", async () => {
    const [a, b] = [users[0]!, users[1]!]
    const pushed: Array<Delivery> = []
    const batch = [record(message(1, a, b), 0), record(message(2, a, b), 1)]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const real = yield* Db
      // Both look for stored entries and take seqs before either saves: the race of a rebalance.
      const arrived = yield* Deferred.make<void>()
      let waiting = 0
      const racing = Db.of({
        ...real,
        save: (messages, entries, replayed) =>
          Effect.suspend(() => (++waiting === 2 ? Deferred.succeed(arrived, undefined) : Effect.void)).pipe(
            Effect.andThen(Deferred.await(arrived)),
            Effect.andThen(real.save(messages, entries, replayed))
          )
      })
      const consumers = yield* Effect.forEach([1, 2], () => Consumer.make().pipe(Effect.provideService(Db, racing)))
      yield* Effect.forEach(consumers, (consumer) => consumer.handleBatch(batch), { concurrency: 2, discard: true })
      const conversations = yield* ConversationStore
      return { inboxA: yield* inboxOf(a), inboxB: yield* inboxOf(b), b: yield* conversations.list(b), spent: yield* (yield* SeqStore).current(b) }
    }).pipe(
      Effect.provide(Layer.succeed(Pusher, Pusher.of({ push: (deliveries) => Effect.sync(() => void pushed.push(...deliveries)), signal: () => Effect.void }))),
      Effect.provide(Db.layer.pipe(Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory)))),
      Effect.provide(Layer.mergeAll(SeqStore.layerMemory, GroupStore.layerMemory))
    ))
    expect(result.spent).toBe(4) // each consumer took two numbers for b
    const stored = new Map<string, string>([
      ...result.inboxA.entries.map((e) => [`${a}:${e.seq}`, e.message.server_id] as const),
      ...result.inboxB.entries.map((e) => [`${b}:${e.seq}`, e.message.server_id] as const)
    ])
    expect(stored.size).toBe(4)
    expect(pushed).toHaveLength(8) // each consumer pushes its four
    for (const delivery of pushed) expect(stored.get(`${delivery.user_id}:${delivery.seq}`)).toBe(delivery.message.server_id)
    expect(result.b.map((c) => [c.last_seq, c.unread])).toEqual([[Math.max(...result.inboxB.entries.map((e) => e.seq)), 2]])
  })
})

describe("Consumer, on a bus that says what it hands over again (standalone's)", () => {
  /** `record`, as a bus that knows whether it handed it over before hands it. */
  const handed = (value: Message, offset: number, redelivered: boolean): ConsumedRecord => ({ ...record(value, offset), redelivered })

  /**
   * A consumer over memory stores, counting its lookups of stored entries; its first
   * `lostAnswers` saves go through and then fail (their answer lost).
   */
  const setupCountingLookups = (lostAnswers: number) => {
    const pushed: Array<Delivery> = []
    const counts = { lookups: 0, lostAnswers }
    const counting = Layer.effect(Db, Effect.map(Effect.service(Db), (db) =>
      Db.of({
        ...db,
        existing: (keys) => Effect.andThen(Effect.sync(() => void counts.lookups++), db.existing(keys)),
        save: (messages, entries, replayed) =>
          Effect.flatMap(db.save(messages, entries, replayed), (earlier) =>
            counts.lostAnswers-- > 0
              ? Effect.fail(new ServiceUnavailable({ message: "the save went through; its answer was lost" }))
              : Effect.succeed(earlier))
      })))
    const layer = Layer.effect(Consumer, Consumer.make()).pipe(
      Layer.provideMerge(Layer.succeed(Pusher, Pusher.of({ push: (batch) => Effect.sync(() => void pushed.push(...batch)), signal: () => Effect.void }))),
      Layer.provideMerge(counting.pipe(Layer.provideMerge(Db.layer))),
      Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, GroupStore.layerMemory))
    )
    return { layer, pushed, counts }
  }

  it("a batch handed over for the first time goes straight to its seqs, without a lookup; one from a bus that cannot tell is looked up", async () => {
    const { counts, layer, pushed } = setupCountingLookups(0)
    const [a, b] = [users[0]!, users[1]!]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch([handed(message(1, a, b), 0, false)])
      yield* consumer.handleBatch([handed(message(2, a, b), 1, false)])
      const firstTimes = counts.lookups
      // Kafka's records say nothing: another consumer may have stored them before a rebalance.
      yield* consumer.handleBatch([record(message(3, a, b), 2)])
      return { firstTimes, inbox: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.firstTimes).toBe(0)
    expect(counts.lookups).toBe(1)
    expect(result.inbox.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_2"], [3, "m_3"]])
    expect(pushed.filter((d) => d.user_id === b).map((d) => d.seq)).toEqual([1, 2, 3])
  })

  it("a batch handed over again after its save went through (its answer lost) looks up, keeps its stored seqs, and gives back the numbers it took", async () => {
    const { counts, layer, pushed } = setupCountingLookups(1)
    const [a, b] = [users[0]!, users[1]!]
    const batch = [message(1, a, b), message(2, a, b)]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      const failed = yield* Effect.flip(consumer.handleBatch(batch.map((m, i) => handed(m, i, false))))
      // The bus hands the failed batch over again, marked.
      yield* consumer.handleBatch(batch.map((m, i) => handed(m, i, true)))
      const afterRetry = counts.lookups
      yield* consumer.handleBatch([handed(message(3, a, b), 2, false)])
      const seqs = yield* SeqStore
      return { failed, afterRetry, b: yield* inboxOf(b), spent: yield* seqs.current(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.failed._tag).toBe("ServiceUnavailable")
    expect(result.afterRetry).toBe(1)
    expect(counts.lookups).toBe(1)
    expect(result.b.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_2"], [3, "m_3"]])
    // The retry took 3 and 4 while it looked up, and gave them back; the failed call pushed nothing.
    expect(pushed.filter((d) => d.user_id === b).map((d) => `${d.message.server_id}#${d.seq}`)).toEqual(["m_1#1", "m_2#2", "m_3#3"])
    expect(result.spent).toBe(3)
  })

  it("a batch holding one record handed over again (a journal's, after a restart) looks up: the one stored before keeps its seq, and is not stored twice", async () => {
    const { counts, layer, pushed } = setupCountingLookups(0)
    const [a, b] = [users[0]!, users[1]!]
    const result = await Effect.runPromise(Effect.gen(function*() {
      const consumer = yield* Consumer
      yield* consumer.handleBatch([handed(message(1, a, b), 0, false)])
      const before = counts.lookups
      // The process stopped before the bus committed it: its journal hands it over again, marked.
      yield* consumer.handleBatch([handed(message(1, a, b), 0, true), handed(message(2, a, b), 1, false)])
      return { before, b: yield* inboxOf(b) }
    }).pipe(Effect.provide(layer)))
    expect(result.before).toBe(0)
    expect(counts.lookups).toBe(1)
    // Found before its seqs were handed out: m_2 gets the next (the number taken for m_1 goes back).
    expect(result.b.entries.map((e) => [e.seq, e.message.server_id])).toEqual([[1, "m_1"], [2, "m_2"]])
    // Pushed again under its stored seq (clients keep it once, by server_id).
    expect(pushed.filter((d) => d.user_id === b).map((d) => `${d.message.server_id}#${d.seq}`)).toEqual(["m_1#1", "m_1#1", "m_2#2"])
  })
})

describe("coalesceBatches", () => {
  /** `size` records of `partition`, offsets from `from`. */
  const batch = (partition: number, from: number, size: number): ReadonlyArray<ConsumedRecord> =>
    Array.from({ length: size }, (_, i) => ({ topic: "t", partition, offset: from + i, key: `k${partition}`, value: `${partition}:${from + i}` }))
  const valuesOf = (records: ReadonlyArray<ConsumedRecord>) => records.map((r) => r.value)

  /**
   * A handler that records each call's records and holds it until released (`release(i)` lets
   * the i-th call end, failing with `fail` if given). `started(n)` waits for the n-th call to begin.
   */
  const gatedHandler = Effect.gen(function*() {
    const calls: Array<ReadonlyArray<string>> = []
    const gates: Array<Deferred.Deferred<void, string>> = []
    const gateOf = (i: number) => gates[i] ??= Deferred.makeUnsafe<void, string>()
    const handler = (records: ReadonlyArray<ConsumedRecord>) =>
      Effect.suspend(() => {
        const i = calls.push(valuesOf(records)) - 1
        return Deferred.await(gateOf(i))
      })
    const release = (i: number, fail?: string) =>
      fail === undefined ? Deferred.succeed(gateOf(i), undefined) : Deferred.fail(gateOf(i), fail)
    const started = (n: number): Effect.Effect<void> => Effect.suspend(() => calls.length >= n ? Effect.void : Effect.yieldNow.pipe(Effect.andThen(started(n))))
    return { calls, handler, release, started }
  })

  it("a batch goes at once when a call is free; those arriving meanwhile go together, in arrival order", async () => {
    const calls = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedHandler
      const handle = yield* coalesceBatches(gated.handler, { concurrency: 1, maxRecords: 100 })
      const first = yield* Effect.forkChild(handle(batch(0, 0, 2)))
      yield* gated.started(1)
      const rest = yield* Effect.forEach([batch(1, 0, 1), batch(2, 0, 3), batch(3, 0, 1)], (b) => Effect.forkChild(handle(b)))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      expect(gated.calls).toHaveLength(1) // the others wait for the one call
      yield* gated.release(0)
      yield* Fiber.join(first)
      yield* gated.started(2)
      yield* gated.release(1)
      yield* Effect.forEach(rest, Fiber.join)
      return gated.calls
    })))
    expect(calls).toEqual([["0:0", "0:1"], ["1:0", "2:0", "2:1", "2:2", "3:0"]])
  })

  it("a merged call holds at most maxRecords records; a larger batch goes alone", async () => {
    const calls = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedHandler
      const handle = yield* coalesceBatches(gated.handler, { concurrency: 1, maxRecords: 3 })
      const first = yield* Effect.forkChild(handle(batch(0, 0, 1)))
      yield* gated.started(1)
      const rest = yield* Effect.forEach(
        [batch(1, 0, 2), batch(2, 0, 2), batch(3, 0, 1), batch(4, 0, 5), batch(5, 0, 1)],
        (b) => Effect.forkChild(handle(b))
      )
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      for (let call = 0; call < 5; call++) {
        yield* gated.started(call + 1)
        yield* gated.release(call)
      }
      yield* Fiber.join(first)
      yield* Effect.forEach(rest, Fiber.join)
      return gated.calls
    })))
    expect(calls.map((call) => call.length)).toEqual([1, 2, 3, 5, 1])
    expect(calls.flat()).toEqual(["0:0", "1:0", "1:1", "2:0", "2:1", "3:0", "4:0", "4:1", "4:2", "4:3", "4:4", "5:0"])
  })

  it("runs up to `concurrency` calls at once", async () => {
    const calls = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedHandler
      const handle = yield* coalesceBatches(gated.handler, { concurrency: 2, maxRecords: 100 })
      const fibers = yield* Effect.forEach([batch(0, 0, 1), batch(1, 0, 1), batch(2, 0, 1)], (b) =>
        Effect.forkChild(handle(b)).pipe(Effect.tap(() => Effect.yieldNow)))
      yield* gated.started(2) // two calls run although neither has ended
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      expect(gated.calls).toHaveLength(2)
      yield* gated.release(0)
      yield* gated.started(3)
      yield* gated.release(1)
      yield* gated.release(2)
      yield* Effect.forEach(fibers, Fiber.join)
      return gated.calls
    })))
    expect(calls).toEqual([["0:0"], ["1:0"], ["2:0"]])
  })

  it("a failed call fails every batch in it, and the next call is made as usual", async () => {
    const exits = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedHandler
      const handle = yield* coalesceBatches(gated.handler, { concurrency: 1, maxRecords: 100 })
      const first = yield* Effect.forkChild(handle(batch(0, 0, 1)))
      yield* gated.started(1)
      const merged = yield* Effect.forEach([batch(1, 0, 1), batch(2, 0, 1)], (b) => Effect.forkChild(handle(b)))
      yield* gated.release(0)
      yield* gated.started(2)
      yield* gated.release(1, "db down")
      const later = yield* Effect.forkChild(handle(batch(1, 0, 1)))
      yield* gated.started(3)
      yield* gated.release(2)
      return yield* Effect.forEach([first, ...merged, later], Fiber.await)
    })))
    expect(exits.map(Exit.isSuccess)).toEqual([true, false, false, true])
    expect(exits[1]).toEqual(Exit.fail("db down"))
  })

  it("a batch whose call failed goes alone when it comes back, until a call of its own succeeds; the others merge as before", async () => {
    const calls = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const gated = yield* gatedHandler
      const handle = yield* coalesceBatches(gated.handler, { concurrency: 1, maxRecords: 100 })
      /** Holds a call open, queues `batches` behind it, lets the held call and then `calls` more end (failing those in `fails`). */
      const round = (batches: ReadonlyArray<ReadonlyArray<ConsumedRecord>>, calls: number, fails: ReadonlyArray<number> = []) =>
        Effect.gen(function*() {
          const before = gated.calls.length
          const held = yield* Effect.forkChild(handle(batch(9, before, 1)))
          yield* gated.started(before + 1)
          const queued = yield* Effect.forEach(batches, (b) => Effect.forkChild(handle(b)))
          for (let i = 0; i < 10; i++) yield* Effect.yieldNow
          yield* gated.release(before)
          yield* Fiber.join(held)
          for (let call = before + 1; call <= before + calls; call++) {
            yield* gated.started(call + 1)
            yield* gated.release(call, fails.includes(call - before) ? "refused" : undefined)
          }
          return yield* Effect.forEach(queued, Fiber.await)
        })
      const failedMerge = yield* round([batch(1, 0, 1), batch(2, 0, 1)], 1, [1])
      expect(failedMerge.map(Exit.isSuccess)).toEqual([false, false])
      // Handed over again: each alone (the first still failing), the new ones merged.
      const retried = yield* round([batch(1, 0, 1), batch(2, 0, 1), batch(3, 0, 1), batch(4, 0, 1)], 3, [1])
      expect(retried.map(Exit.isSuccess)).toEqual([false, true, true, true])
      // The first once more, alone, and it succeeds; after that it merges again.
      yield* round([batch(1, 0, 1), batch(5, 0, 1)], 2)
      yield* round([batch(1, 1, 1), batch(6, 0, 1)], 1)
      return gated.calls.filter((call) => !call.some((value) => value.startsWith("9:")))
    })))
    expect(calls).toEqual([
      ["1:0", "2:0"],
      ["1:0"], ["2:0"], ["3:0", "4:0"],
      ["1:0"], ["5:0"],
      ["1:1", "6:0"]
    ])
  })

  it("a handler that throws fails its call's batches with the defect, and the next call is made as usual", async () => {
    let throws = true
    const exits = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const handle = yield* coalesceBatches((records: ReadonlyArray<ConsumedRecord>) => {
        if (throws) {
          throws = false
          throw new Error(`cannot handle ${records.length}`)
        }
        return Effect.void
      }, { concurrency: 1, maxRecords: 100 })
      // Without the guard the caller would wait for ever: the timeout makes that a failure here.
      const once = Effect.exit(handle(batch(0, 0, 1))).pipe(Effect.timeout("4 seconds"))
      return [yield* once, yield* once]
    })))
    expect(Exit.isFailure(exits[0]!) && Cause.hasDies(exits[0].cause)).toBe(true)
    expect(exits[1]).toEqual(Exit.void)
  })

  it.each([1, 2])("when the merging stops, the call in flight, the batches waiting (%i) and any handed over later are interrupted, none left hanging", async (queued) => {
    const result = await Effect.runPromise(Effect.gen(function*() {
      const scope = yield* Scope.make()
      const gated = yield* gatedHandler
      const handle = yield* coalesceBatches(gated.handler, { concurrency: 1, maxRecords: 100 }).pipe(Scope.provide(scope))
      const inFlight = yield* Effect.forkChild(handle(batch(0, 0, 1)))
      yield* gated.started(1)
      // The first is taken by the merging, a second still queued to it.
      const waiting = yield* Effect.forEach([batch(1, 0, 1), batch(2, 0, 1)].slice(0, queued), (b) => Effect.forkChild(handle(b)).pipe(Effect.tap(() => Effect.yieldNow)))
      for (let i = 0; i < 10; i++) yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      const later = yield* Effect.forkChild(handle(batch(3, 0, 1)))
      const exits = yield* Effect.forEach([inFlight, ...waiting, later], Fiber.await).pipe(Effect.timeout("4 seconds"))
      return { exits, calls: gated.calls }
    }))
    expect(result.exits.map((exit) => Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause))).toEqual(Array(queued + 2).fill(true))
    expect(result.calls).toEqual([["0:0"]])
  })
})

describe("Consumer.layer", () => {
  /**
   * What Consumer.layer needs: a memory bus of four partitions, memory stores, `settings`, and
   * `pusher` (default: one that pushes nowhere); db saves counted.
   */
  const consumerLayer = (settings: Record<string, string>, pusher = Pusher.of({ push: () => Effect.void, signal: () => Effect.void })) => {
    let saves = 0
    const counting = Layer.effect(Db, Effect.map(Effect.service(Db), (db) => Db.of({ ...db, save: (...args) => Effect.suspend(() => (saves++, db.save(...args))) })))
    const layer = MessageBus.layerMemory({ partitions: 4 }).pipe(
      Layer.provideMerge(Layer.succeed(Pusher, pusher)),
      Layer.provideMerge(counting.pipe(Layer.provideMerge(Db.layer))),
      Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, GroupStore.layerMemory)),
      Layer.provideMerge(ConfigProvider.layer(ConfigProvider.fromUnknown(settings)))
    )
    return { layer, saves: () => saves }
  }

  it("works the partitions' batches waiting at once in one call (CONSUMER_CONCURRENCY=1), and stores every message once, in order", async () => {
    // Eight conversations over four partitions, published before the consumer starts.
    const senders = Array.from({ length: 8 }, (_, i) => UserId.make(`u_s${i}`))
    const receiver = UserId.make("u_r")
    const sent = senders.flatMap((sender, i) => Array.from({ length: 5 }, (_, k) => message(i * 5 + k + 1, sender, receiver)))
    const { layer, saves } = consumerLayer({ CONSUMER_CONCURRENCY: "1" })
    const inbox = await Effect.runPromise(Effect.gen(function*() {
      const bus = yield* MessageBus
      yield* bus.publish(MESSAGES_TOPIC, sent.map((m) => ({ key: conversationKey(m), value: JSON.stringify(m) })))
      return yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(Consumer.layer)
        yield* Effect.service(MessageBus).pipe(
          Effect.flatMap((bus) => bus.lag(MESSAGES_TOPIC, "im-consumer")),
          Effect.repeat({ until: (lag) => lag === 0 })
        )
        return yield* inboxOf(receiver)
      }))
    }).pipe(Effect.provide(layer.pipe(Layer.fresh))))
    // Each partition hands its records over as one batch; they wait for the first call at most.
    expect(saves()).toBeLessThanOrEqual(2)
    for (const sender of senders) {
      const from = inbox.entries.filter((e) => e.message.sender_id === sender).map((e) => e.message.server_id)
      expect(from).toEqual(sent.filter((m) => m.sender_id === sender).map((m) => m.server_id))
    }
    expect(inbox.entries).toHaveLength(sent.length)
  })

  it("a group's fan-out waiting on the database holds back no one-to-one message: each topic has its own group and calls", async () => {
    const group = testGroup("g_burst", 3)
    const [a, b] = [users[0]!, users[1]!]
    const single = message(2, a, b)
    const fanout = group.message(1, group.members[0]!)
    const result = await Effect.runPromise(Effect.gen(function*() {
      const saving = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      // Saves holding a group message wait for `release`.
      const holding = Layer.effect(Db, Effect.map(Effect.service(Db), (db) =>
        Db.of({
          ...db,
          save: (messages, ...rest) =>
            messages.some((m) => m.group_id !== undefined)
              ? Deferred.succeed(saving, undefined).pipe(Effect.andThen(Deferred.await(release)), Effect.andThen(db.save(messages, ...rest)))
              : db.save(messages, ...rest)
        })))
      const layer = MessageBus.layerMemory({ partitions: 4 }).pipe(
        Layer.provideMerge(Layer.succeed(Pusher, Pusher.of({ push: () => Effect.void, signal: () => Effect.void }))),
        Layer.provideMerge(holding.pipe(Layer.provideMerge(Db.layer))),
        Layer.provideMerge(Layer.mergeAll(HistoryStore.layerMemory, ConversationStore.layerMemory, InboxStore.layerMemory, SeqStore.layerMemory, GroupStore.layerMemory)),
        Layer.provideMerge(ConfigProvider.layer(ConfigProvider.fromUnknown({ CONSUMER_CONCURRENCY: "1" })))
      )
      return yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(Consumer.layer)
        yield* group.create
        const bus = yield* MessageBus
        const publish = (m: Message) => bus.publish(busTopicOf(conversationKey(m)), [{ key: conversationKey(m), value: JSON.stringify(m) }])
        yield* publish(fanout)
        yield* Deferred.await(saving)
        yield* publish(single)
        const stored = yield* inboxOf(b).pipe(
          Effect.repeat({ until: (page) => page.entries.length > 0, schedule: Schedule.spaced("5 millis") }),
          Effect.timeout("2 seconds"),
          Effect.option
        )
        const memberBefore = yield* inboxOf(group.members[1]!)
        yield* Deferred.succeed(release, undefined)
        yield* bus.lag(FANOUT_TOPIC, "im-consumer.fanout").pipe(Effect.repeat({ until: (lag) => lag === 0, schedule: Schedule.spaced("5 millis") }))
        return { stored, memberBefore, memberAfter: yield* inboxOf(group.members[1]!) }
      })).pipe(Effect.provide(layer))
    }))
    // Stored while the group's save still waited.
    expect(result.stored._tag).toBe("Some")
    expect(result.memberBefore.entries).toEqual([])
    expect(result.memberAfter.entries.map((e) => e.message.server_id)).toEqual([fanout.server_id])
  })

  it.each([
    { ahead: "2", storedWhileHeld: true },
    { ahead: "0", storedWhileHeld: false }
  ])("CONSUMER_PUSH_AHEAD=$ahead: the next message is stored while the last one's push is held: $storedWhileHeld; the pushes keep the store order", async ({ ahead, storedWhileHeld }) => {
    const [a, b] = [users[0]!, users[1]!]
    const sent = [1, 2, 3].map((n) => message(n, a, b))
    const pushed: Array<ReadonlyArray<Delivery>> = []
    const release = Deferred.makeUnsafe<void>()
    // The first push waits for `release`; the others go at once.
    const holding = Pusher.of({
      push: (deliveries) => Effect.suspend(() => pushed.push(deliveries) === 1 ? Deferred.await(release) : Effect.void),
      signal: () => Effect.void
    })
    const { layer } = consumerLayer({ CONSUMER_CONCURRENCY: "1", CONSUMER_PUSH_AHEAD: ahead }, holding)
    const result = await Effect.runPromise(Effect.gen(function*() {
      const bus = yield* MessageBus
      const publish = (m: Message) => bus.publish(MESSAGES_TOPIC, [{ key: conversationKey(m), value: JSON.stringify(m) }])
      return yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(Consumer.layer)
        yield* publish(sent[0]!)
        yield* Effect.repeat(Effect.sync(() => pushed.length), { until: (calls) => calls === 1, schedule: Schedule.spaced("2 millis") })
        yield* publish(sent[1]!)
        yield* publish(sent[2]!)
        const whileHeld = yield* inboxOf(b).pipe(
          Effect.repeat({ until: (page) => page.entries.length === 3, schedule: Schedule.spaced("5 millis") }),
          Effect.timeout("300 millis"),
          Effect.option
        )
        yield* Deferred.succeed(release, undefined)
        yield* bus.lag(MESSAGES_TOPIC, "im-consumer").pipe(Effect.repeat({ until: (lag) => lag === 0, schedule: Schedule.spaced("5 millis") }))
        yield* Effect.repeat(Effect.sync(() => pushed.flat().length), { until: (entries) => entries === 6, schedule: Schedule.spaced("2 millis") })
        return { whileHeld: whileHeld._tag === "Some", inbox: yield* inboxOf(b) }
      }))
    }).pipe(Effect.provide(layer)))
    expect(result.whileHeld).toBe(storedWhileHeld)
    // b's entries reach the pusher once each, in the order of b's inbox.
    const pushedToB = pushed.flat().filter((d) => d.user_id === b).map((d) => [d.seq, d.message.server_id])
    expect(pushedToB).toEqual(result.inbox.entries.map((e) => [e.seq, e.message.server_id]))
    expect(pushedToB.map(([, id]) => id)).toEqual(sent.map((m) => m.server_id))
  })

  it.each(["one-to-one", "group"])("stores a %s message published just as the consumer stops: its drain waits for the call in flight", async (kind) => {
    const { layer } = consumerLayer({ CONSUMER_CONCURRENCY: "1" })
    const group = testGroup("g_drain", 2)
    const m = kind === "group" ? group.message(1, group.members[0]!) : message(1, users[0]!, users[1]!)
    const receiver = kind === "group" ? group.members[1]! : users[1]!
    const inbox = await Effect.runPromise(Effect.gen(function*() {
      const bus = yield* MessageBus
      yield* group.create
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(Consumer.layer)
        yield* Effect.sleep("20 millis")
        yield* bus.publish(busTopicOf(conversationKey(m)), [{ key: conversationKey(m), value: JSON.stringify(m) }])
      }))
      return yield* inboxOf(receiver)
    }).pipe(Effect.provide(layer)))
    expect(inbox.entries.map((e) => e.message.server_id)).toEqual([m.server_id])
  })

  it("a lane whose consuming stops for good tells the service's Vital, which stops the whole service", async () => {
    const { layer } = consumerLayer({ CONSUMER_CONCURRENCY: "1" })
    const ended = await Effect.runPromise(Effect.gen(function*() {
      const { told, vital } = yield* recordingVital
      const bus = yield* MessageBus
      // The fan-out lane's consumer crashes for good (kafkajs gives up); the other runs.
      const failing = Layer.succeed(MessageBus, MessageBus.of({
        ...bus,
        consume: (options, handler) =>
          options.topic === FANOUT_TOPIC
            ? Effect.fail(new PortError({ port: "MessageBus", operation: "consume", retryable: false, cause: "crashed" }))
            : bus.consume(options, handler)
      }))
      return yield* Effect.scoped(Layer.build(Consumer.layer.pipe(Layer.provide([failing, Layer.succeed(Vital, vital)]))).pipe(
        Effect.andThen(Deferred.await(told)),
        Effect.timeout("2 seconds")
      ))
    }).pipe(Effect.provide(layer)))
    expect(ended).toBe("consuming im.fanout (group im-consumer.fanout)")
  })

  it.each(
    [
      ...["CONSUMER_CONCURRENCY", "CONSUMER_MAX_BATCH", "CONSUMER_MAX_ENTRIES"].flatMap((setting) => ["0", "-3", "2.5"].map((value) => [setting, value])),
      ["CONSUMER_LAG_INTERVAL", "0 seconds"],
      ["CONSUMER_DRAIN_TIMEOUT", "-1 seconds"]
    ]
  )("refuses %s=%s, naming it", async (setting, value) => {
    const { layer } = consumerLayer({ [setting]: value })
    const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(Consumer.layer)).pipe(Effect.provide(layer)))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(String(exit)).toContain(setting)
  })
})
