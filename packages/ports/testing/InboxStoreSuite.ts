import type { ServerId, UserId } from "@im/domain/Ids"
import { assert } from "@effect/vitest"
import { Effect, Exit, type Layer, Schema } from "effect"
import { type InboxRef, InboxStore } from "../src/InboxStore.ts"
import { freshServerId, freshUserId, sortedBy } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const ref = (user_id: UserId, seq: number, server_id: ServerId = freshServerId()): InboxRef => ({ user_id, seq, server_id })

const seqs = (refs: ReadonlyArray<InboxRef>) => refs.map((r) => r.seq)

const SmallInt = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

/** The InboxStore contract: per-user ordered entries, idempotent on (user, server_id). */
export const inboxStoreSuite = (name: string, adapter: Layer.Layer<InboxStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`InboxStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("range: after is exclusive, until inclusive, at most limit, ascending", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const entries = [1, 2, 3, 4, 5].map((seq) => ref(user, seq))
        yield* inbox.append(entries)
        assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 100 }), entries)
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 2, limit: 100 })), [3, 4, 5])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 1, until: 3, limit: 100 })), [2, 3])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 0, limit: 2 })), [1, 2])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 1, until: 5, limit: 3 })), [2, 3, 4])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 3, until: 3, limit: 100 })), [])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 5, limit: 100 })), [])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 0, until: undefined, limit: 100 })), [1, 2, 3, 4, 5])
      }))

    it.effect("range skips the numbers that hold no entry", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        yield* inbox.append([1, 2, 5, 9].map((seq) => ref(user, seq)))
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 2, until: 8, limit: 100 })), [5])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 1, limit: 2 })), [2, 5])
        assert.strictEqual(yield* inbox.newest(user), 9)
      }))

    it.effect("out-of-order appends still come back in seq order", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        yield* inbox.append([ref(user, 3)])
        yield* inbox.append([ref(user, 1)])
        yield* inbox.append([ref(user, 6), ref(user, 2), ref(user, 5), ref(user, 4)])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 0, limit: 100 })), [1, 2, 3, 4, 5, 6])
        assert.strictEqual(yield* inbox.newest(user), 6)
      }))

    it.effect("a replayed entry is stored once", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const entry = ref(user, 1)
        yield* inbox.append([entry])
        yield* inbox.append([entry])
        const second = ref(user, 2)
        yield* inbox.append([entry, second])
        yield* inbox.append([second, entry])
        assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 100 }), [entry, second])
        assert.strictEqual(yield* inbox.newest(user), 2)
      }))

    it.effect("a replay under another number keeps the first entry: idempotent on (user, server_id)", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const entry = ref(user, 1)
        yield* inbox.append([entry])
        yield* inbox.append([{ ...entry, seq: 2 }])
        assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 100 }), [entry])
        assert.strictEqual(yield* inbox.newest(user), 1)
        assert.deepStrictEqual(yield* inbox.find([{ user_id: user, server_id: entry.server_id }]), [entry])
      }))

    it.effect("append returns, as stored, the entries stored before under another number: usually none", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const other = freshUserId()
        const first = ref(user, 1)
        assert.deepStrictEqual(yield* inbox.append([first]), [])
        // Another consumer took seq 2 for the same message and stores it second; seq 2 stays free.
        const late = { ...first, seq: 2 }
        const fresh = ref(user, 3)
        const elsewhere = ref(other, 1, first.server_id)
        assert.deepStrictEqual(yield* inbox.append([late, fresh, elsewhere, fresh]), [first])
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 0, limit: 100 })), [1, 3])
        assert.deepStrictEqual(yield* inbox.range({ user: other, after: 0, limit: 100 }), [elsewhere])
        assert.deepStrictEqual(yield* inbox.append([fresh, first]), [], "a replay under the stored numbers returns nothing")
        const moved = yield* inbox.append([{ ...fresh, seq: 7 }, { ...first, seq: 8 }, ref(user, 9)])
        assert.deepStrictEqual(sortedBy(moved, (r) => String(r.seq)), [first, fresh], "under other numbers: both, in any order")
        assert.deepStrictEqual(seqs(yield* inbox.range({ user, after: 0, limit: 100 })), [1, 3, 9])
        assert.deepStrictEqual(yield* inbox.append([]), [])

        // One pair twice in one call: the first is the one, stored or found.
        const twice = ref(freshUserId(), 3)
        assert.deepStrictEqual(yield* inbox.append([twice, { ...twice, seq: 4 }]), [])
        assert.deepStrictEqual(yield* inbox.find([twice]), [twice])
        assert.deepStrictEqual(yield* inbox.append([twice, { ...twice, seq: 5 }]), [], "the first matches what is stored")
        assert.deepStrictEqual(yield* inbox.append([{ ...twice, seq: 6 }, twice]), [twice], "the first does not")
      }))

    it.effect("the same (user, server_id) twice in one call is stored once", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const same = ref(user, 1)
        yield* inbox.append([same, same])
        assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 100 }), [same])

        const other = freshUserId()
        const server_id = freshServerId()
        yield* inbox.append([ref(other, 1, server_id), ref(other, 2, server_id)])
        const stored = yield* inbox.range({ user: other, after: 0, limit: 100 })
        assert.strictEqual(stored.length, 1)
        assert.strictEqual(stored[0]!.server_id, server_id)
        assert.deepStrictEqual(yield* inbox.find([{ user_id: other, server_id }]), stored)
      }))

    it.effect("a different message under a taken number is refused and changes nothing", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const first = ref(user, 1)
        yield* inbox.append([first])
        const intruder = ref(user, 1)
        const exit = yield* Effect.exit(inbox.append([intruder]))
        // Storing it silently would lose a message; dropping it silently too.
        assert.isTrue(Exit.isFailure(exit))
        assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 100 }), [first])
        assert.deepStrictEqual(yield* inbox.find([{ user_id: user, server_id: intruder.server_id }]), [])
      }))

    it.effect("numbers inside a stored stretch, or a stretch over stored numbers, are refused", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const stored = [1, 2, 3, 5, 6].map((seq) => ref(user, seq))
        yield* inbox.append(stored)
        const attempts = [
          [ref(user, 2)], // inside 1…3
          [ref(user, 3), ref(user, 4)], // over its end
          Array.from({ length: 10 }, (_, i) => ref(user, i + 1)), // around all of it
          [ref(user, 4), ref(user, 5)] // into 5…6 from the free 4 (last: a store may keep 4)
        ]
        for (const attempt of attempts) {
          assert.isTrue(Exit.isFailure(yield* Effect.exit(inbox.append(attempt))), `refused: ${seqs(attempt)}`)
          for (const intruder of attempt) {
            const at = stored.find((entry) => entry.seq === intruder.seq)
            if (at === undefined) continue
            assert.deepStrictEqual(yield* inbox.find([intruder]), [], `no intruder at ${intruder.seq}`)
            assert.deepStrictEqual(yield* inbox.range({ user, after: at.seq - 1, until: at.seq, limit: 1 }), [at])
          }
        }
      }))

    it.effect("a replay under another number may bring that number for a new message", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const first = ref(user, 1)
        yield* inbox.append([first])
        // seq 3 was taken for the replay and, in a plan that did not know it, for a new message.
        const added = ref(user, 3)
        assert.deepStrictEqual(yield* inbox.append([{ ...first, seq: 3 }, added]), [first])
        assert.deepStrictEqual(yield* inbox.range({ user, after: 0, limit: 10 }), [first, added])
      }))

    it.effect("find returns the stored entries among many (user, server_id) keys", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const [a, b] = [freshUserId(), freshUserId()]
        const shared = freshServerId()
        const stored = [ref(a, 1, shared), ref(a, 2), ref(b, 7, shared), ref(b, 8)]
        yield* inbox.append(stored)
        const found = yield* inbox.find([
          ...stored.map(({ server_id, user_id }) => ({ user_id, server_id })),
          { user_id: a, server_id: freshServerId() },
          { user_id: freshUserId(), server_id: shared },
          { user_id: b, server_id: stored[1]!.server_id }
        ])
        const key = (r: InboxRef) => `${r.user_id}/${r.server_id}`
        assert.deepStrictEqual(sortedBy(found, key), sortedBy(stored, key))
        assert.deepStrictEqual(yield* inbox.find([]), [])
      }))

    it.effect("newest is 0 for an empty inbox, else the highest stored seq", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        assert.strictEqual(yield* inbox.newest(user), 0)
        yield* inbox.append([ref(user, 4)])
        assert.strictEqual(yield* inbox.newest(user), 4)
        yield* inbox.append([ref(user, 2)])
        assert.strictEqual(yield* inbox.newest(user), 4)
        assert.deepStrictEqual(yield* inbox.range({ user: freshUserId(), after: 0, limit: 100 }), [])
      }))

    it.effect("users' inboxes are separate, even for the same message and numbers", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const [a, b] = [freshUserId(), freshUserId()]
        const message = freshServerId()
        const forA = [ref(a, 1, message), ref(a, 2)]
        const forB = [ref(b, 1, message), ref(b, 2), ref(b, 3)]
        yield* inbox.append([forB[0]!, forA[0]!, forB[1]!, forA[1]!, forB[2]!])
        assert.deepStrictEqual(yield* inbox.range({ user: a, after: 0, limit: 100 }), forA)
        assert.deepStrictEqual(yield* inbox.range({ user: b, after: 0, limit: 100 }), forB)
        assert.strictEqual(yield* inbox.newest(a), 2)
        assert.strictEqual(yield* inbox.newest(b), 3)
      }))

    it.effect("large numbers and a large batch", () =>
      Effect.gen(function*() {
        const inbox = yield* InboxStore
        const user = freshUserId()
        const base = 2 ** 40
        const entries = Array.from({ length: 2000 }, (_, i) => ref(user, base + i))
        yield* inbox.append(entries)
        assert.strictEqual(yield* inbox.newest(user), base + 1999)
        assert.deepStrictEqual(yield* inbox.range({ user, after: base + 10, until: base + 12, limit: 100 }), entries.slice(11, 13))
        assert.strictEqual((yield* inbox.range({ user, after: 0, limit: 5000 })).length, 2000)
      }))

    it.effect.prop(
      "any appends, in any order, replayed or not, range like a sorted list",
      {
        numbers: Schema.Array(SmallInt(1, 40)).check(Schema.isMaxLength(30)),
        batch: SmallInt(1, 8),
        replays: SmallInt(0, 5),
        after: SmallInt(0, 45),
        span: Schema.optional(SmallInt(0, 45)),
        limit: SmallInt(1, 50)
      },
      ({ after, batch, limit, numbers, replays, span }) =>
        Effect.gen(function*() {
          const inbox = yield* InboxStore
          const user = freshUserId()
          const bySeq = new Map<number, InboxRef>()
          for (const seq of numbers) if (!bySeq.has(seq)) bySeq.set(seq, ref(user, seq))
          const stored = [...bySeq.values()] // in the generated (random) order
          for (let i = 0; i < stored.length; i += batch) yield* inbox.append(stored.slice(i, i + batch))
          yield* inbox.append(stored.slice(0, replays))

          const until = span === undefined ? undefined : after + span
          const expected = [...stored]
            .sort((x, y) => x.seq - y.seq)
            .filter((r) => r.seq > after && (until === undefined || r.seq <= until))
            .slice(0, limit)
          assert.deepStrictEqual(yield* inbox.range({ user, after, until, limit }), expected)
          assert.strictEqual(yield* inbox.newest(user), Math.max(0, ...bySeq.keys()))
        }),
      { timeout: 60_000, arbitrary: { runs: 30 } }
    )
  })
