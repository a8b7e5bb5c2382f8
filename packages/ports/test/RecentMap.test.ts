import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import { RecentMap } from "../src/RecentMap.ts"

type Op =
  | { readonly _tag: "set"; readonly key: number; readonly value: number }
  | { readonly _tag: "delete"; readonly key: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("set" as const), key: fc.integer({ min: 0, max: 40 }), value: fc.integer() }),
  fc.record({ _tag: fc.constant("delete" as const), key: fc.integer({ min: 0, max: 40 }) })
)

describe("RecentMap", () => {
  it("keeps the entries set last, at most capacity, like a map that drops its oldest key", () =>
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.array(op, { maxLength: 400 }), (capacity, ops) => {
        const map = new RecentMap<number, number>(capacity)
        const queued = () => (map as unknown as { readonly queue: ReadonlyArray<unknown>; readonly head: number })
        // The model: a Map in insertion order, a key set again moved to the end.
        const model = new Map<number, number>()
        for (const step of ops) {
          if (step._tag === "set") {
            map.set(step.key, step.value)
            model.delete(step.key)
            model.set(step.key, step.value)
            if (model.size > capacity) model.delete(model.keys().next().value!)
          } else {
            map.delete(step.key)
            model.delete(step.key)
          }
          assert.strictEqual(map.size, model.size)
          // The queue's live part stays within a constant factor of the capacity.
          assert.isAtMost(queued().queue.length - queued().head, 4 * capacity + 1_024 + 20)
        }
        for (let key = 0; key <= 40; key++) {
          assert.strictEqual(map.get(key), model.get(key))
          assert.strictEqual(map.has(key), model.has(key))
        }
      })
    ))

  it("past the capacity the entry set longest ago goes first", () => {
    const map = new RecentMap<string, number>(2)
    map.set("a", 1)
    map.set("b", 2)
    map.set("a", 3) // a is now the newest
    map.set("c", 4)
    assert.deepStrictEqual([map.get("a"), map.get("b"), map.get("c")], [3, undefined, 4])
  })

  it("stays bounded over many sets, its queue too", () => {
    const map = new RecentMap<number, number>(1_000)
    for (let i = 0; i < 200_000; i++) map.set(i % 3 === 0 ? i : i % 1_500, i)
    assert.strictEqual(map.size, 1_000)
    // @ts-expect-error the queue is private; its length is what this test bounds
    const queued: number = map.queue.length
    assert.isAtMost(queued, 2 * 1_000 + 16 + 1_024 + 1)
  })

  it("with capacity 0 keeps nothing; refuses a capacity that is not an integer ≥ 0", () => {
    const none = new RecentMap<string, number>(0)
    none.set("a", 1)
    assert.strictEqual(none.size, 0)
    assert.isUndefined(none.get("a"))
    assert.throws(() => new RecentMap(-1), RangeError)
    assert.throws(() => new RecentMap(1.5), RangeError)
  })
})
