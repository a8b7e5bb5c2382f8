import { assert, describe, it } from "@effect/vitest"
import { Effect, Ref } from "effect"
import { SqlError } from "effect/sql"
import { portCall } from "../src/SqlErrors.ts"

const failingTimes = (failures: number, reason: SqlError.SqlErrorReason) =>
  Effect.gen(function*() {
    const attempts = yield* Ref.make(0)
    const effect = Ref.updateAndGet(attempts, (n) => n + 1).pipe(
      Effect.flatMap((n) => n <= failures ? Effect.fail(new SqlError.SqlError({ reason })) : Effect.succeed("done"))
    )
    return { attempts, effect }
  })

describe("portCall", () => {
  it.live("retries a transient failure and succeeds", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failingTimes(2, new SqlError.ConnectionError({ cause: new Error("reset") }))
      assert.strictEqual(yield* effect.pipe(portCall("InboxStore", "append")), "done")
      assert.strictEqual(yield* Ref.get(attempts), 3)
    }))

  it.live("gives up on a transient failure after a few attempts, as a retryable PortError", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failingTimes(100, new SqlError.DeadlockError({ cause: new Error("deadlock") }))
      const error = yield* Effect.flip(effect.pipe(portCall("SeqStore", "allocate")))
      assert.strictEqual(error._tag, "PortError")
      assert.strictEqual(error.port, "SeqStore")
      assert.strictEqual(error.operation, "allocate")
      assert.isTrue(error.retryable)
      assert.strictEqual(yield* Ref.get(attempts), 5)
    }))

  it.live("does not retry a permanent failure", () =>
    Effect.gen(function*() {
      const { attempts, effect } = yield* failingTimes(
        100,
        new SqlError.UniqueViolation({ cause: new Error("duplicate"), constraint: "inbox_pkey" })
      )
      const error = yield* Effect.flip(effect.pipe(portCall("InboxStore", "append")))
      assert.isFalse(error.retryable)
      assert.instanceOf(error.cause, SqlError.SqlError)
      assert.strictEqual(yield* Ref.get(attempts), 1)
    }))
})
