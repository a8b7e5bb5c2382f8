import { Deferred, Effect } from "effect"

/**
 * A store as the cache suites see it: its loads are counted, may be held (a reader caught
 * between loading and caching), and its calls may yield a few times first (so that concurrent
 * readers and writers interleave differently). `late` wraps a write, `load` the read the cache
 * fills from.
 */
export const instrumentLoads = () => {
  const state = {
    loads: 0,
    calls: 0,
    jitter: [] as ReadonlyArray<number>,
    /** When set, the next load reads the store, then waits for `release`. */
    hold: undefined as undefined | { readonly loaded: Deferred.Deferred<void>; readonly release: Deferred.Deferred<void> }
  }
  /** Yields as many times as the jitter says for this call: other fibers run meanwhile. */
  const jitter = Effect.suspend(() => {
    state.calls++
    const yields = state.jitter.length === 0 ? 0 : state.jitter[state.calls % state.jitter.length]!
    return Effect.forEach(Array.from({ length: yields }), () => Effect.yieldNow, { discard: true })
  })
  const late = <Args extends ReadonlyArray<any>, A, E>(f: (...args: Args) => Effect.Effect<A, E>) => (...args: Args) =>
    Effect.andThen(jitter, f(...args))
  const load = <A, E>(read: Effect.Effect<A, E>) =>
    Effect.gen(function*() {
      state.loads++
      yield* jitter
      const value = yield* read
      yield* jitter
      const hold = state.hold
      if (hold !== undefined) {
        state.hold = undefined
        yield* Deferred.succeed(hold.loaded, undefined)
        yield* Deferred.await(hold.release)
      }
      return value
    })
  return { state, late, load }
}
