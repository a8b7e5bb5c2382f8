import { assert } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import fc from "fast-check"
import {
  applyEntries,
  applyRead,
  type ConversationEntry,
  type ConversationState,
  ConversationStore,
  toConversation
} from "../src/ConversationStore.ts"
import { freshServerId, freshUserId } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

/** The ConversationStore contract: unread counts that replays cannot inflate, reads that only move forward. */
export const conversationStoreSuite = (name: string, adapter: Layer.Layer<ConversationStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`ConversationStore conformance: ${name}`, adapter, options, (it) => {
    const entry = (user: ConversationEntry["user_id"], conversation: string, seq: number, own = false): ConversationEntry => ({
      user_id: user,
      conversation,
      seq,
      server_id: freshServerId(),
      own
    })

    it.effect("counts entries from others, newest conversation first; replays change nothing", () =>
      Effect.gen(function*() {
        const store = yield* ConversationStore
        const me = freshUserId()
        const peer = `u:${freshUserId()}`
        const group = `g:${freshUserId()}`
        const batch = [entry(me, peer, 1), entry(me, group, 2), entry(me, peer, 3), entry(me, group, 4), entry(me, group, 5)]
        yield* store.record(batch)
        yield* store.record(batch)
        yield* store.record([batch[2]!, batch[4]!])
        const list = yield* store.list(me)
        assert.deepStrictEqual(list.map((c) => [c.conversation, c.last_seq, c.read_seq, c.unread]), [
          [group, 5, 0, 3],
          [peer, 3, 0, 2]
        ])
        assert.strictEqual(list[0]!.last_server_id, batch[4]!.server_id)
        assert.deepStrictEqual(yield* store.list(freshUserId()), [])
      }))

    it.effect("the user's own entry reads everything before it", () =>
      Effect.gen(function*() {
        const store = yield* ConversationStore
        const me = freshUserId()
        const peer = `u:${freshUserId()}`
        yield* store.record([entry(me, peer, 1), entry(me, peer, 2), entry(me, peer, 3, true), entry(me, peer, 4)])
        assert.deepStrictEqual((yield* store.list(me)).map((c) => [c.read_seq, c.unread]), [[3, 1]])
      }))

    it.effect("marking read counts what is left, only moves forward, stops at the newest entry, and needs the conversation", () =>
      Effect.gen(function*() {
        const store = yield* ConversationStore
        const me = freshUserId()
        const peer = `u:${freshUserId()}`
        yield* store.record([entry(me, peer, 2), entry(me, peer, 5), entry(me, peer, 9)])
        const partial = Option.getOrThrow(yield* store.markRead(me, peer, 5))
        assert.deepStrictEqual([partial.before.unread, partial.before.read_seq, partial.after.unread, partial.after.read_seq], [3, 0, 1, 5])
        const backwards = Option.getOrThrow(yield* store.markRead(me, peer, 1))
        assert.deepStrictEqual([backwards.after.read_seq, backwards.after.unread], [5, 1])
        const beyond = Option.getOrThrow(yield* store.markRead(me, peer, 1_000))
        assert.deepStrictEqual([beyond.after.read_seq, beyond.after.unread], [9, 0])
        yield* store.record([entry(me, peer, 12)])
        assert.deepStrictEqual((yield* store.list(me)).map((c) => [c.read_seq, c.unread]), [[9, 1]])
        assert.isTrue(Option.isNone(yield* store.markRead(me, `u:${freshUserId()}`, 3)))
        assert.isTrue(Option.isNone(yield* store.markRead(freshUserId(), peer, 3)))
      }))

    it.effect("property: batches (with gaps, own entries, replays and partial replays) and reads agree with the shared rules", () =>
      Effect.gen(function*() {
        const store = yield* ConversationStore
        const step = fc.oneof(
          fc.record({
            kind: fc.constant("entries" as const),
            // A replay hands over again `replay` entries recorded before, ending `replayBack`
            // entries before the newest (a retried batch, or an older one redelivered); new
            // entries follow, with gaps between seqs (other conversations' entries).
            replay: fc.nat(8),
            replayBack: fc.oneof(fc.nat(3), fc.nat(12)),
            // Half of the batches are replays only.
            items: fc.tuple(
              fc.boolean(),
              fc.array(fc.record({ gap: fc.integer({ min: 1, max: 3 }), own: fc.integer({ min: 0, max: 6 }).map((n) => n === 0) }), {
                maxLength: 12
              })
            ).map(([replayOnly, items]) => replayOnly ? [] : items)
          }),
          fc.record({ kind: fc.constant("read" as const), back: fc.integer({ min: -3, max: 25 }) })
        )
        for (const steps of fc.sample(fc.array(step, { maxLength: 10 }), { numRuns: 150, seed: 7 })) {
          const me = freshUserId()
          const conversation = `g:${freshUserId()}`
          const recorded: Array<ConversationEntry> = []
          let model: ConversationState | undefined
          let seq = 0
          for (const s of steps) {
            if (s.kind === "entries") {
              const fresh = s.items.map(({ gap, own }) => entry(me, conversation, seq += gap, own))
              const end = Math.max(0, recorded.length - s.replayBack)
              const entries = [...recorded.slice(Math.max(0, end - s.replay), end), ...fresh]
              recorded.push(...fresh)
              if (entries.length === 0) continue
              yield* store.record(entries)
              model = applyEntries(model, entries)
            } else if (model !== undefined) {
              const marked = Option.getOrThrow(yield* store.markRead(me, conversation, model.last_seq - s.back))
              assert.deepStrictEqual(marked.before, toConversation(conversation, model))
              model = applyRead(model, model.last_seq - s.back)
              assert.deepStrictEqual(marked.after, toConversation(conversation, model))
            }
            assert.deepStrictEqual(yield* store.list(me), model === undefined ? [] : [toConversation(conversation, model)], JSON.stringify(steps))
          }
        }
      }))

    it.effect("many users and conversations in one call, in any order", () =>
      Effect.gen(function*() {
        const store = yield* ConversationStore
        const users = [freshUserId(), freshUserId(), freshUserId()]
        const group = `g:${freshUserId()}`
        const entries = users.flatMap((user, u) => [1, 2, 3, 4].map((seq) => entry(user, group, seq, seq === 2 && u === 1)))
        yield* store.record([...entries].reverse())
        const unread = yield* Effect.forEach(users, (user) => Effect.map(store.list(user), (list) => list[0]!.unread))
        assert.deepStrictEqual(unread, [4, 2, 4])
      }))
  })
