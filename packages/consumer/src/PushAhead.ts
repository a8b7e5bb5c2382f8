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
 * were handed over: a user's entries still reach the gateways in the order they were stored.
 *
 * At most `capacity` pushes wait; then `push` waits for room, so a slow pusher slows the saves
 * instead of piling up entries. Entries are handed over only once stored, so a pushed entry is
 * still always pullable. What it gives up: the bus may commit a batch before its entries are
 * pushed, so a consumer killed in between leaves those pushes unmade, as a failed push does;
 * the clients pull them (on their next push, or on reconnecting). When the scope closes the
 * line is pushed to its end first, for at most `drainTimeout`.
 *
 * `capacity` 0 is the pusher itself: each step pushes before the next starts.
 */
export const pushAhead = (
  pusher: Pusher["Service"],
  options: { readonly capacity: number; readonly drainTimeout?: Duration.Input }
): Effect.Effect<Pusher["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    if (options.capacity <= 0) return pusher
    const line = yield* Queue.bounded<ReadonlyArray<Delivery>, Cause.Done>(options.capacity)
    const pushing = yield* Queue.takeAll(line).pipe(
      Effect.flatMap((waiting) => pusher.push(waiting.length === 1 ? waiting[0]! : waiting.flat())),
      // Pushes are best effort; one that dies must not stop the ones after it.
      Effect.catchDefect((defect) => Effect.logError("a push failed; clients will pull", defect)),
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
        Effect.ignore
      )
    )
    return Pusher.of({
      push: (deliveries) =>
        deliveries.length === 0 ? Effect.void : Effect.asVoid(Queue.offer(line, deliveries)),
      signal: pusher.signal
    })
  })
