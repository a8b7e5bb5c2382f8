import { assert, describe, it } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Exit } from "effect"
import * as Settings from "../src/Settings.ts"

/** Reads `config` from an environment of `env`. */
const read = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.exit(Effect.gen(function*() {
    return yield* config
  }).pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))))

describe("Settings", () => {
  it.effect("a positive duration: read as written, its default when unset; zero, negative, infinite or unreadable refused, naming it", () =>
    Effect.gen(function*() {
      const setting = Settings.positiveDuration("SOME_INTERVAL", Duration.seconds(5))
      assert.deepStrictEqual(yield* read(setting, { SOME_INTERVAL: "250 millis" }), Exit.succeed(Duration.millis(250)))
      assert.deepStrictEqual(yield* read(setting, {}), Exit.succeed(Duration.seconds(5)))
      for (const value of ["0 seconds", "-1 seconds", "Infinity", "soon", "5"]) {
        const exit = yield* read(setting, { SOME_INTERVAL: value })
        assert.isTrue(Exit.isFailure(exit), value)
        assert.include(String(exit), "SOME_INTERVAL", value)
      }
      assert.include(String(yield* read(setting, { SOME_INTERVAL: "0 seconds" })), "above zero")
    }))

  it.effect("a duration or zero: zero is read as none; negative or infinite refused", () =>
    Effect.gen(function*() {
      const setting = Settings.durationOrZero("SOME_LINGER", Duration.millis(5))
      assert.deepStrictEqual(yield* read(setting, { SOME_LINGER: "0 millis" }), Exit.succeed(Duration.zero))
      assert.deepStrictEqual(yield* read(setting, {}), Exit.succeed(Duration.millis(5)))
      for (const value of ["-5 millis", "Infinity"]) {
        const exit = yield* read(setting, { SOME_LINGER: value })
        assert.isTrue(Exit.isFailure(exit), value)
        assert.include(String(exit), "SOME_LINGER", value)
      }
    }))

  it.effect("a whole number within its bounds", () =>
    Effect.gen(function*() {
      const setting = Settings.int("SOME_COUNT", 8, { minimum: 1, maximum: 64 })
      assert.deepStrictEqual(yield* read(setting, { SOME_COUNT: "64" }), Exit.succeed(64))
      assert.deepStrictEqual(yield* read(setting, {}), Exit.succeed(8))
      for (const value of ["0", "65", "-3", "2.5", "many"]) {
        const exit = yield* read(setting, { SOME_COUNT: value })
        assert.isTrue(Exit.isFailure(exit), value)
        assert.include(String(exit), "SOME_COUNT", value)
      }
      assert.deepStrictEqual(yield* read(Settings.int("NO_TOP", 1, { minimum: 1 }), { NO_TOP: "1000000" }), Exit.succeed(1_000_000))
    }))
})
