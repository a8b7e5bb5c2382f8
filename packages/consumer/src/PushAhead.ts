import type { Delivery } from "@im/domain/Message"
import { Pusher } from "@im/pusher/Pusher"
import { type Cause, Duration, Effect, Fiber, Queue, type Scope } from "effect"

/**
 * How many stored steps' pushes may wait behind the one being pushed (CONSUMER_PUSH_AHEAD); by
 * default none: each step pushes before the next starts. Pushing ahead (2) cut the cluster's
 * median latency at 1,500 messages/s by a fifth and its full speed by a tenth, since the
 * consumer's calls got smaller and twice as many (docs/benchmarks.md, "Pushing ahead").
 */
export const DEFAULT_PUSH_AHEAD = 0

/**
 * A Pusher for one consumer lane that pushes behind the lane's saves instead of between them:
 * `push` hands the entries to a line and returns, and one fiber pushes the line in order, so
 * the next step's lookup and save (in db, or in PGlite's worker) run while the gateways get
 * the last step's entries. Pushes that queued up meanwhile go in one call, in the order they
 * were handed over, up to `maxEntries` entries a call: a user's entries still reach the
 * gateways in the order they were stored.
 *
 * At most `capacity` pushes wait; then `push` waits for room, so a slow pusher slows the saves
 * instead of piling up entries. Entries are handed over only once stored, so a pushed entry is
 * still always pullable. What it gives up: the bus may commit a batch before its entries are
 * pushed, so a consumer killed in between leaves those pushes unmade, as a failed push does;
 * the clients pull them (on their next push, or on reconnecting). A push that fails in any way
 * is logged and the line goes on. When the scope closes the line is pushed to its end first,
 * for at most `drainTimeout`; what is left then is logged, and so is a push handed over after.
 *
 * `capacity` 0 is the pusher itself: each step pushes before the next starts.
 */
export const pushAhead = (
  pusher: Pusher["Service"],
  options: { readonly capacity: number; readonly maxEntries: number; readonly drainTimeout?: Duration.Input }
): Effect.Effect<Pusher["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    if (options.capacity <= 0) return pusher
    const line = yield* Queue.bounded<ReadonlyArray<Delivery>, Cause.Done>(options.capacity)
    // Pushes are best effort: one that fails, dies or is interrupted from within is logged, and
    // the ones after it are made.
    const pushOne = (deliveries: ReadonlyArray<Delivery>) =>
      pusher.push(deliveries).pipe(
        Effect.catchCause((cause) => Effect.logError("a push failed; clients will pull", cause))
      )
    const pushing = yield* Queue.takeAll(line).pipe(
      Effect.flatMap((waiting) => Effect.forEach(mergeUpTo(waiting, options.maxEntries), pushOne, { discard: true })),
      Effect.forever,
      // It ends when the line is ended and empty.
      Effect.ignore,
      Effect.forkScoped
    )
    // Runs before the fiber above is interrupted: what was stored is pushed first.
    yield* Effect.addFinalizer(() =>
      Queue.end(line).pipe(
        Effect.andThen(Fiber.await(pushing)),
        Effect.timeout(options.drainTimeout ?? Duration.seconds(5)),
        Effect.catchTag("TimeoutError", () =>
          Effect.flatMap(Queue.size(line), (left) =>
            Effect.logWarning("stopped before the line of pushes was pushed; clients will pull", { pushes_left: left })))
      )
    )
    return Pusher.of({
      push: (deliveries) =>
        deliveries.length === 0 ? Effect.void : Queue.offer(line, deliveries).pipe(
          Effect.flatMap((taken) =>
            taken ? Effect.void : Effect.logWarning("a push after the line ended is not made; clients will pull", { entries: deliveries.length })
          )
        ),
      signal: pusher.signal
    })
  })

/** The pushes in order, consecutive ones joined while a call holds at most `most` entries (a larger one goes alone). */
export const mergeUpTo = (
  pushes: ReadonlyArray<ReadonlyArray<Delivery>>,
  most: number
): ReadonlyArray<ReadonlyArray<Delivery>> => {
  const calls: Array<ReadonlyArray<Delivery>> = []
  let current: Array<Delivery> | undefined
  for (const push of pushes) {
    if (current !== undefined && current.length + push.length <= most) {
      current.push(...push)
      continue
    }
    if (current !== undefined) calls.push(current)
    current = [...push]
  }
  if (current !== undefined) calls.push(current)
  return calls
}
