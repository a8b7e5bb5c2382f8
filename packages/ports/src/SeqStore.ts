import type { UserId } from "@im/domain/Ids"
import { Context, Effect, Layer } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * The requests of an `allocate` call as one count per user (a user listed twice gets one block
 * covering both); a count that is not an integer ≥ 1 is a defect of the caller.
 */
export const totalsByUser = (requests: ReadonlyArray<readonly [UserId, number]>) =>
  Effect.suspend(() => {
    const totals = new Map<UserId, number>()
    for (const [user, count] of requests) {
      if (!Number.isSafeInteger(count) || count < 1) {
        return Effect.die(new RangeError(`SeqStore.allocate: count must be an integer ≥ 1, got ${count} for ${user}`))
      }
      totals.set(user, (totals.get(user) ?? 0) + count)
    }
    return Effect.succeed(totals)
  })

/**
 * Per-user inbox sequence numbers. `allocate` reserves a block of consecutive numbers for each
 * user in one atomic step; a number is never handed out twice, even after the backing store
 * loses its data. A store may skip numbers (after it lost its data, or when concurrent calls
 * start a user it has no counter for): pull answers cover skipped numbers.
 */
export class SeqStore extends Context.Service<SeqStore, {
  /** For each (user, count ≥ 1), reserves `count` numbers and returns the first of the block. */
  readonly allocate: (
    requests: ReadonlyArray<readonly [UserId, number]>
  ) => Effect.Effect<ReadonlyMap<UserId, number>, PortError>
  /** The highest number handed out for the user; 0 if none. */
  readonly current: (user: UserId) => Effect.Effect<number, PortError>
}>()("@im/ports/SeqStore") {
  static readonly layerMemory = Layer.sync(SeqStore, () => {
    const counters = new Map<UserId, number>()
    return SeqStore.of({
      allocate: (requests) =>
        Effect.sync(() => {
          const firsts = new Map<UserId, number>()
          for (const [user, count] of requests) {
            const current = counters.get(user) ?? 0
            counters.set(user, current + count)
            if (!firsts.has(user)) firsts.set(user, current + 1)
          }
          return firsts
        }),
      current: (user) => Effect.sync(() => counters.get(user) ?? 0)
    })
  })
}
