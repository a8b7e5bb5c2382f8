import { PortError } from "@im/ports/PortError"
import * as Settings from "@im/ports/Settings"
import { Config, Duration, Effect, Redacted, Schedule, type Scope } from "effect"
import { Redis } from "ioredis"

export interface RedisConnectionOptions {
  readonly url: Redacted.Redacted<string>
  /** Name of the config key the URL came from, for the start-up error. */
  readonly urlKey?: string | undefined
  /** How long to wait for the server at start-up before failing. */
  readonly connectTimeout?: Duration.Input | undefined
}

/** The settings every Redis adapter reads: REDIS_URL, REDIS_KEY_PREFIX, REDIS_CONNECT_TIMEOUT. */
export const connectionSettings = {
  url: Config.Redacted("REDIS_URL").pipe(Config.withDefault(Redacted.make("redis://127.0.0.1:6379"))),
  keyPrefix: Config.String("REDIS_KEY_PREFIX").pipe(Config.withDefault("im:")),
  connectTimeout: Settings.positiveDuration("REDIS_CONNECT_TIMEOUT", Duration.seconds(10))
}

/**
 * Errors a Redis server answers with that go away by themselves: it is loading its data set,
 * running a long script, failing over, or a replica is read-only during a switch-over.
 */
const TRANSIENT_REPLIES = ["LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN"]

/**
 * A reply error (`ERR …`, `WRONGTYPE …`, a script error) is the command's own fault and comes
 * back the same on every try; anything else (connection reset or refused, the client giving
 * up after its reconnect attempts) is the network's and worth another try.
 */
export const isRetryable = (cause: unknown): boolean => {
  if (!(cause instanceof Error)) return false
  if (cause.name === "ReplyError") return TRANSIENT_REPLIES.some((prefix) => cause.message.startsWith(prefix))
  return true
}

/** A few tries, soon: past that the caller gets a retryable PortError and decides. */
const transientRetry = Schedule.exponential("50 millis", 2).pipe(Schedule.jittered)

/**
 * One Redis call as an Effect: mapped to PortError, retried a few times when transient. Every
 * call of the adapters may run twice (ioredis also resends unanswered commands after a
 * reconnect), so each is idempotent or, for SeqStore.allocate, at worst skips numbers.
 */
export const redisCall = <A>(port: string, operation: string, call: () => Promise<A>): Effect.Effect<A, PortError> =>
  Effect.tryPromise({
    try: call,
    catch: (cause) => new PortError({ port, operation, retryable: isRetryable(cause), cause })
  }).pipe(Effect.retry({ schedule: transientRetry, times: 4, while: (error) => error.retryable }))

/**
 * One Redis call as an Effect, mapped to PortError and not retried: for a cache read, which a
 * caller that gets no answer takes to the store instead of waiting for Redis.
 */
export const redisCallOnce = <A>(port: string, operation: string, call: () => Promise<A>): Effect.Effect<A, PortError> =>
  Effect.tryPromise({
    try: call,
    catch: (cause) => new PortError({ port, operation, retryable: isRetryable(cause), cause })
  })

/**
 * A connected ioredis client, quit when the scope closes. Start-up waits a bounded time for the
 * server and fails with a message naming the config key; after that, ioredis reconnects by
 * itself and a command fails (instead of hanging) after two reconnect attempts.
 */
export const connect = (options: RedisConnectionOptions): Effect.Effect<Redis, PortError, Scope.Scope> => {
  const urlKey = options.urlKey ?? "REDIS_URL"
  const connectTimeout = Duration.fromInputUnsafe(options.connectTimeout ?? "10 seconds")
  return Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(Redacted.value(options.url), {
        lazyConnect: true,
        maxRetriesPerRequest: 2,
        connectTimeout: 2_000,
        retryStrategy: (times) => Math.min(times * 100, 2_000)
      })
      // Connection errors also fail the commands waiting on the connection, which is where
      // they are handled; without a listener ioredis prints each one to stderr.
      redis.on("error", () => {})
      return redis
    }),
    (redis) =>
      Effect.tryPromise(() => redis.quit()).pipe(
        Effect.timeout("2 seconds"),
        Effect.catchCause(() => Effect.sync(() => redis.disconnect()))
      )
  ).pipe(
    Effect.tap((redis) =>
      Effect.tryPromise(() => redis.ping()).pipe(
        Effect.retry(Schedule.spaced("250 millis")),
        Effect.timeoutOrElse({
          duration: connectTimeout,
          orElse: () => Effect.fail(new Error(`no answer within ${Duration.format(connectTimeout)}`))
        }),
        Effect.mapError((cause) =>
          new PortError({
            port: "Redis",
            operation: `connect (cannot reach the server at ${urlKey}=${redactedUrl(options.url)})`,
            retryable: true,
            cause
          })
        )
      )
    )
  )
}

/** The URL without its password, for messages. */
const redactedUrl = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "<unparsable>"
  }
}

/** Deletes every key under `prefix`, a scan at a time: for the tests and tools that write under a prefix of their own. */
export const deletePrefix = async (redis: Redis, prefix: string): Promise<void> => {
  for await (const keys of redis.scanStream({ match: `${prefix}*`, count: 1000 })) {
    if ((keys as Array<string>).length > 0) await redis.del(...(keys as Array<string>))
  }
}
