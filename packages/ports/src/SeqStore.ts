import type { UserId } from "@im/domain/Ids"
import { Context, Effect, Layer, type Scope, Semaphore } from "effect"
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

/** Numbers of `user` reserved up to `reservedUpTo` and handed out up to `handedUpTo` (`giveBack`). */
export interface ReservedRange {
  readonly user: UserId
  readonly handedUpTo: number
  readonly reservedUpTo: number
}

/**
 * Per-user inbox sequence numbers. `allocate` reserves a block of consecutive numbers for each
 * user in one atomic step; a number is never handed out twice, even after the backing store
 * loses its data, except one given back (`giveBack`), which its caller never stored nor showed
 * anyone. A store may skip numbers (after it lost its data, or when concurrent calls start a
 * user it has no counter for): pull answers cover skipped numbers.
 */
export class SeqStore extends Context.Service<SeqStore, {
  /** For each (user, count ≥ 1), reserves `count` numbers and returns the first of the block. */
  readonly allocate: (
    requests: ReadonlyArray<readonly [UserId, number]>
  ) => Effect.Effect<ReadonlyMap<UserId, number>, PortError>
  /** The highest number handed out for the user; 0 if none. */
  readonly current: (user: UserId) => Effect.Effect<number, PortError>
  /**
   * Gives back numbers reserved and never used (`reserving`, at a clean shutdown; the consumer,
   * for the numbers a replayed batch took and did not need): numbers the caller has not stored,
   * will not store, and showed nobody, for they will be handed out again. Each user's counter
   * goes back to `handedUpTo` where it still is `reservedUpTo` (no other call took numbers
   * since); elsewhere the numbers stay skipped.
   */
  readonly giveBack: (ranges: ReadonlyArray<ReservedRange>) => Effect.Effect<void, PortError>
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
      current: (user) => Effect.sync(() => counters.get(user) ?? 0),
      giveBack: (ranges) =>
        Effect.sync(() => {
          for (const { handedUpTo, reservedUpTo, user } of ranges) {
            if (counters.get(user) === reservedUpTo) counters.set(user, handedUpTo)
          }
        })
    })
  })
}

/** Numbers a user's block holds (`SeqStore.layerReserving`): a reservation every 10,000 entries. */
export const DEFAULT_SEQ_BLOCK = 10_000

/**
 * `inner` handing out numbers from blocks it reserves in the store, at least `block` at a time
 * per user: a call that the blocks held in this process cover goes to no store at all (for
 * standalone, a round trip to PGlite fewer in most consumer steps). A block is reserved before
 * any of its numbers is handed out, so none is handed out twice across a restart; what was
 * reserved and not handed out before one is skipped, at most `block - 1` numbers a user, which a
 * SeqStore may do (a client's pull reports them); a clean shutdown gives them back (`giveBack`),
 * so a restart goes on from the last number handed out. For a store
 * this process alone allocates from (standalone's, in its locked data folder): another
 * allocator's numbers would fall between this one's, out of the order they are stored in.
 */
export const reserving = (inner: SeqStore["Service"], block: number): Effect.Effect<SeqStore["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const lock = yield* Semaphore.make(1)
    /** Per user: the next number to hand out and the last one reserved. */
    const blocks = new Map<UserId, { next: number; last: number }>()
    const held = (user: UserId) => {
      const range = blocks.get(user)
      return range === undefined ? 0 : range.last - range.next + 1
    }

    const allocate = (requests: ReadonlyArray<readonly [UserId, number]>) =>
      Semaphore.withPermit(lock, Effect.gen(function*() {
        const totals = yield* totalsByUser(requests)
        const short = [...totals].filter(([user, count]) => held(user) < count)
        if (short.length > 0) {
          const sizes = short.map(([user, count]) => [user, Math.max(block, count)] as const)
          const firsts = yield* inner.allocate(sizes)
          for (const [user, size] of sizes) {
            const first = firsts.get(user)!
            const range = blocks.get(user)
            // A block right after the one held extends it; else what is left of that is skipped.
            const follows = range !== undefined && range.last + 1 === first
            blocks.set(user, { next: follows ? range.next : first, last: first + size - 1 })
          }
        }
        const result = new Map<UserId, number>()
        for (const [user, count] of totals) {
          const range = blocks.get(user)!
          result.set(user, range.next)
          range.next += count
        }
        return result
      }))

    yield* Effect.addFinalizer(() =>
      Semaphore.withPermit(lock, Effect.suspend(() => {
        const ranges = [...blocks].flatMap(([user, { last, next }]) => next > last ? [] : [{ user, handedUpTo: next - 1, reservedUpTo: last }])
        return ranges.length === 0 ? Effect.void : inner.giveBack(ranges)
      })).pipe(Effect.catchTag("PortError", (error) => Effect.logWarning("reserved seqs not given back; they stay skipped", error)))
    )

    return SeqStore.of({
      allocate,
      current: (user) => Effect.suspend(() => {
        const range = blocks.get(user)
        return range === undefined ? inner.current(user) : Effect.succeed(range.next - 1)
      }),
      // Back into the block held here (the store's counter is this block's end, and stays).
      giveBack: (ranges) =>
        Semaphore.withPermit(lock, Effect.sync(() => {
          for (const { handedUpTo, reservedUpTo, user } of ranges) {
            const range = blocks.get(user)
            if (range !== undefined && range.next - 1 === reservedUpTo && handedUpTo < reservedUpTo) range.next = handedUpTo + 1
          }
        }))
    })
  })

/** The SeqStore in context, reserving blocks of `block` numbers (see `reserving`). */
export const layerReserving = (block: number = DEFAULT_SEQ_BLOCK): Layer.Layer<SeqStore, never, SeqStore> =>
  Layer.effect(SeqStore, Effect.flatMap(Effect.service(SeqStore), (inner) => reserving(inner, block)))
