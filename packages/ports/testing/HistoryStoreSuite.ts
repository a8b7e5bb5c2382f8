import { MAX_CONTENT_LENGTH, type Message } from "@im/domain/Message"
import { assert } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { HistoryStore } from "../src/HistoryStore.ts"
import { freshGroupId, freshServerId, freshUserId, makeMessage, sortedBy } from "./Fixtures.ts"
import { describeAdapter, type SuiteOptions } from "./Suite.ts"

const byServerId = (messages: ReadonlyArray<Message>) => sortedBy(messages, (m) => m.server_id)

/** The HistoryStore contract: every message once by server_id, the first version kept. */
export const historyStoreSuite = (name: string, adapter: Layer.Layer<HistoryStore, unknown>, options: SuiteOptions = {}) =>
  describeAdapter(`HistoryStore conformance: ${name}`, adapter, options, (it) => {
    it.effect("saves and gets messages of every shape, field for field", () =>
      Effect.gen(function*() {
        const history = yield* HistoryStore
        const { receiver_id: _, ...groupBase } = makeMessage()
        const self = freshUserId()
        const messages: Array<Message> = [
          makeMessage(),
          { ...groupBase, kind: "group", group_id: freshGroupId(), content_type: "image", content: "https://files/x.png" },
          // A note to self, empty, at the epoch.
          makeMessage({ sender_id: self, receiver_id: self, content_type: "voice", content: "", create_time: 0, send_time: 0 }),
          makeMessage({ content: "it's \"quoted\"; DROP TABLE messages; -- 你好 👋 \\ backslash\n\ttab" }),
          makeMessage({ content: "x".repeat(MAX_CONTENT_LENGTH), create_time: 8_640_000_000_000, send_time: 2 ** 50 })
        ]
        yield* history.save(messages)
        const got = yield* history.get(messages.map((m) => m.server_id))
        assert.deepStrictEqual(byServerId(got), byServerId(messages))
        const group = got.find((m) => m.kind === "group")!
        assert.isFalse("receiver_id" in group, "an unset receiver_id is absent, not null")
        assert.isFalse("group_id" in got.find((m) => m.server_id === messages[0]!.server_id)!)
      }))

    it.effect("a recalled message comes back emptied and marked, for good; recalling an unknown id says so", () =>
      Effect.gen(function*() {
        const history = yield* HistoryStore
        const message = makeMessage({ content: "oops" })
        const other = makeMessage({ content: "keep" })
        yield* history.save([message, other])
        assert.isTrue(yield* history.recall(message.server_id))
        assert.isTrue(yield* history.recall(message.server_id))
        yield* history.save([message])
        assert.deepStrictEqual(
          byServerId(yield* history.get([message.server_id, other.server_id])),
          byServerId([{ ...message, content: "", recalled: true }, other])
        )
        assert.isFalse(yield* history.recall(freshServerId()))
      }))

    it.effect("a replayed save keeps the first version", () =>
      Effect.gen(function*() {
        const history = yield* HistoryStore
        const first = makeMessage({ content: "first" })
        yield* history.save([first])
        yield* history.save([{ ...first, content: "second", send_time: first.send_time + 1 }])
        assert.deepStrictEqual(yield* history.get([first.server_id]), [first])
      }))

    it.effect("the same server_id twice in one call is stored once", () =>
      Effect.gen(function*() {
        const history = yield* HistoryStore
        const message = makeMessage()
        const other = makeMessage()
        yield* history.save([message, other, message])
        assert.deepStrictEqual(byServerId(yield* history.get([message.server_id, other.server_id])), byServerId([message, other]))

        const twin = makeMessage({ content: "one" })
        yield* history.save([twin, { ...twin, content: "two" }])
        const got = yield* history.get([twin.server_id])
        assert.strictEqual(got.length, 1)
        assert.include(["one", "two"], got[0]!.content)
      }))

    it.effect("unknown ids are absent", () =>
      Effect.gen(function*() {
        const history = yield* HistoryStore
        const known = makeMessage()
        yield* history.save([known])
        assert.deepStrictEqual(yield* history.get([freshServerId()]), [])
        assert.deepStrictEqual(yield* history.get([freshServerId(), known.server_id, freshServerId()]), [known])
        assert.deepStrictEqual(yield* history.get([]), [])
        yield* history.save([])
      }))

    it.effect("a large batch", () =>
      Effect.gen(function*() {
        const history = yield* HistoryStore
        const messages = Array.from({ length: 1500 }, (_, i) => makeMessage({ content: `message ${i}` }))
        yield* history.save(messages)
        assert.deepStrictEqual(byServerId(yield* history.get(messages.map((m) => m.server_id))), byServerId(messages))
      }))
  })
