import { layer, type Vitest } from "@effect/vitest"
import { type Duration, Effect, type Layer, Schedule } from "effect"

export interface SuiteOptions {
  /** Lets several suites share what their layers build, e.g. one database for a test file. */
  readonly memoMap?: Layer.MemoMap | undefined
  /** Time allowed to build and to release the adapter's layer. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * Declares one conformance suite against one adapter. The layer is built once for the suite's
 * tests, and the tests run on the real clock: adapters talk to real servers whose retries,
 * backoffs and TTLs a test clock would freeze (inside a `layer` block `it.effect` is then what
 * `it.live` is elsewhere).
 */
export const describeAdapter = <R, E>(
  name: string,
  adapter: Layer.Layer<R, E>,
  options: SuiteOptions,
  tests: (it: Vitest.MethodsNonLive<R>) => void
): void =>
  layer(adapter, {
    excludeTestServices: true,
    ...(options.memoMap === undefined ? {} : { memoMap: options.memoMap }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout })
  })(name, tests)

/** Fails the test, instead of hanging it, when `effect` takes longer than `patience`. */
export const within = (patience: Duration.Input, what: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.timeoutOrElse(effect, {
    duration: patience,
    orElse: () => Effect.die(new Error(`gave up after ${JSON.stringify(patience)} waiting for ${what}`))
  })

/**
 * Runs `check` until `predicate` holds, for adapters whose changes show up shortly after the
 * call that made them (a registry's health check, a watch).
 */
export const eventually = <A, E, R>(
  check: Effect.Effect<A, E, R>,
  predicate: (a: A) => boolean,
  what: string,
  patience: Duration.Input = "5 seconds"
): Effect.Effect<A, E, R> =>
  check.pipe(
    Effect.repeat({ until: predicate, schedule: Schedule.spaced("20 millis") }),
    within(patience, what)
  )
