import { Config, Effect, Layer, Logger, References } from "effect"

/** `LOG_LEVEL` (default Info) and `LOG_FORMAT` (`pretty`, default, or `json`). */
export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const level = yield* Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info" as const))
    const format = yield* Config.Literals(["pretty", "json"], "LOG_FORMAT").pipe(Config.withDefault("pretty" as const))
    return Layer.mergeAll(
      Layer.succeed(References.MinimumLogLevel, level),
      format === "json" ? Logger.layer([Logger.consoleJson]) : Layer.empty
    )
  })
)
