import { Effect, Exit } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * Runs a store write, then `invalidate`s the cache entries it may have changed, whatever became
 * of the write: one that failed or was interrupted may still have committed. When the write
 * succeeded but the invalidation failed, the write fails, so that its caller does not take a
 * change for done while the cache may still show the old state; when both failed, the write's
 * own failure is kept and the invalidation's is logged.
 */
export const invalidatingWrite = <A, E>(
  invalidate: Effect.Effect<void, PortError>,
  write: Effect.Effect<A, E>,
  cache: string
): Effect.Effect<A, E | PortError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.exit(restore(write)).pipe(
      Effect.flatMap((exit) =>
        Exit.isSuccess(exit)
          ? Effect.andThen(invalidate, exit)
          : Effect.andThen(
            invalidate.pipe(Effect.catchTag("PortError", (error) => Effect.logError(`${cache} not invalidated`, error))),
            exit
          )
      )
    )
  )
