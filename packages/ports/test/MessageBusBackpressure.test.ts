import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import { MessageBus } from "../src/MessageBus.ts"

const record = (n: number) => ({ key: "k", value: String(n) })

describe("the in-memory bus with maxPending", () => {
  it.live("makes publishers wait while the consumed topic is full, and lets them on as the group commits", () =>
    Effect.gen(function*() {
      const bus = yield* MessageBus
      const release = yield* Deferred.make<void>()
      const seen = yield* Ref.make<Array<string>>([])
      // The handler holds its first batch until released: nothing is committed meanwhile.
      yield* bus.consume({ topic: "t", group: "g", maxBatch: 10 }, (batch) =>
        Ref.update(seen, (all) => [...all, ...batch.map((r) => r.value)]).pipe(Effect.andThen(Deferred.await(release)))).pipe(
          Effect.forkScoped
        )
      yield* bus.publish("t", [record(1), record(2)])
      yield* Effect.sleep("20 millis")
      yield* bus.publish("t", [record(3)]) // 3 held: the limit
      const blocked = yield* bus.publish("t", [record(4)]).pipe(Effect.forkScoped)
      yield* Effect.sleep("50 millis")
      assert.isUndefined(blocked.pollUnsafe(), "the fourth publish waits for room")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(blocked)
      yield* Effect.sleep("50 millis")
      assert.deepStrictEqual(yield* Ref.get(seen), ["1", "2", "3", "4"])
      assert.strictEqual(yield* bus.lag("t", "g"), 0)
    }).pipe(Effect.provide(MessageBus.layerMemory({ maxPending: 3 }))))

  it.live("never waits on a topic no group consumes", () =>
    Effect.gen(function*() {
      const bus = yield* MessageBus
      for (const n of [1, 2, 3, 4, 5]) yield* bus.publish("nobody-reads", [record(n)])
      assert.strictEqual(yield* bus.lag("nobody-reads", "g"), 5)
    }).pipe(Effect.provide(MessageBus.layerMemory({ maxPending: 2 }))))
})
