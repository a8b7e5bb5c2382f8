import { Config, Duration, Schema } from "effect"

/**
 * Settings read from the environment with their limits, so that a value that makes no sense is
 * refused at start, naming the variable, instead of making a loop spin (an interval of zero), a
 * lifetime refuse everything (zero), or a queue hold nothing. Durations are written as Effect
 * reads them: `2 seconds`, `500 millis`, `10 minutes`.
 */

const PositiveDuration = Schema.DurationFromString.pipe(Schema.check(Schema.makeFilter((duration: Duration.Duration) =>
  Duration.isFinite(duration) && Duration.isGreaterThan(duration, Duration.zero)
    ? undefined
    : "must be a finite duration above zero, e.g. \"2 seconds\""
)))

const DurationOrZero = Schema.DurationFromString.pipe(Schema.check(Schema.makeFilter((duration: Duration.Duration) =>
  Duration.isFinite(duration) && Duration.isGreaterThanOrEqualTo(duration, Duration.zero)
    ? undefined
    : "must be a finite duration of at least zero, e.g. \"0 millis\" or \"5 millis\""
)))

/** A duration above zero and finite: an interval, a lifetime, a timeout. */
export const positiveDuration = (name: string, defaultValue: Duration.Duration): Config.Config<Duration.Duration> =>
  Config.schema(PositiveDuration, name).pipe(Config.withDefault(defaultValue))

/** A finite duration of at least zero, where zero means none (no linger, no wait). */
export const durationOrZero = (name: string, defaultValue: Duration.Duration): Config.Config<Duration.Duration> =>
  Config.schema(DurationOrZero, name).pipe(Config.withDefault(defaultValue))

/** A whole number of at least `minimum`, and at most `maximum` when given. */
export const int = (
  name: string,
  defaultValue: number,
  { maximum, minimum }: { readonly minimum: number; readonly maximum?: number }
): Config.Config<number> =>
  Config.schema(
    Schema.Int.pipe(Schema.check(
      maximum === undefined ? Schema.isGreaterThanOrEqualTo(minimum) : Schema.isBetween({ minimum, maximum })
    )),
    name
  ).pipe(Config.withDefault(defaultValue))
