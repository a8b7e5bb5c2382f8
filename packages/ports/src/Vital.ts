import { Cause, Context, Effect, Option, type Scope } from "effect"

/**
 * Where a service's fibers that must run as long as it does (a bus consumer, a registry watch,
 * a heartbeat) say that they ended. The entry point (`Main.run`) then stops the whole service,
 * its finalizers first, and exits non-zero, so that its supervisor restarts it: a process that
 * stays up with part of its work stopped looks healthy to the registry and to its supervisor,
 * and does nothing for that part until someone reads a metric.
 */
export class Vital extends Context.Service<Vital, {
  readonly ended: (what: string, cause: Cause.Cause<unknown>) => Effect.Effect<void>
}>()("@im/ports/Vital") {}

/**
 * Forks `effect`, which should run as long as the scope: a loop, a watch, a consumer. If it ends
 * anyway (fails, dies, or just returns), that is logged and, where the service runs under a
 * Vital (its entry point), told to it; without one (a test's layer) it is only logged. Its
 * interruption (the scope closing) is not an end.
 */
export const forkScoped = <A, E, R>(
  what: string,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<void, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const vital = yield* Effect.serviceOption(Vital)
    const ended = (cause: Cause.Cause<unknown>) =>
      Effect.logError(`${what} stopped`, cause).pipe(
        Effect.andThen(Option.isSome(vital) ? vital.value.ended(what, cause) : Effect.void)
      )
    yield* effect.pipe(
      Effect.matchCauseEffect({
        onFailure: (cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : ended(cause),
        onSuccess: () => ended(Cause.die(new Error(`${what} returned`)))
      }),
      Effect.forkScoped
    )
  })
