import * as Settings from "@im/ports/Settings"
import type { GatewayId, UserId } from "@im/domain/Ids"
import type { PortError } from "@im/ports/PortError"
import { Presence, type PresenceEntry } from "@im/ports/Presence"
import { Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { connectionSettings, redisCall } from "./RedisClient.ts"
import { connectWithScripts, script } from "./RedisScripts.ts"

/*
 * Keys, all expiring PRESENCE_TTL after the gateway last registered or refreshed:
 *   <prefix>presence:c:<len(user)>:<user>:<gateway>  set of the user's connection ids on the gateway
 *   <prefix>presence:u:<user>                        set of gateways that may hold the user
 *   <prefix>presence:g:<gateway>                     set of users the gateway holds
 *   <prefix>presence:k:<gateway>                     the gateway is known: set by its last restore
 * The connection set is the truth: a gateway listed for a user counts only while its connection
 * set exists, so a gateway that stops refreshing drops out when its sets expire. The index sets
 * are cleaned as scripts come across stale members. Redis may lose everything (a restart with no
 * persistence): the known key goes with the rest, `refresh` answers false, and the gateway
 * restores its connections. The scripts build keys from the prefix (standalone Redis, not
 * Cluster); `<len(user)>` is in bytes, the same in JS and in Lua.
 */

const CONNECTIONS_KEY_LUA = `
local function connectionsKey(prefix, user, gateway)
  return prefix .. 'presence:c:' .. #user .. ':' .. user .. ':' .. gateway
end
`

/** KEYS: connections, user's gateways, gateway's users. ARGV: connection, gateway, user, ttl ms. */
const REGISTER = script<number>("imPresenceRegister", `
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return 1
`)

/** KEYS: connections, user's gateways, gateway's users. ARGV: connection, gateway, user. */
const UNREGISTER = script<number>("imPresenceUnregister", `
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[3])
end
return 1
`)

/** KEYS: gateway's users, gateway's known key. ARGV: prefix, gateway, ttl ms. Returns 1 while the gateway is known. */
const REFRESH = script<number>("imPresenceRefresh", `${CONNECTIONS_KEY_LUA}
local prefix, gateway, ttl = ARGV[1], ARGV[2], ARGV[3]
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('PEXPIRE', connectionsKey(prefix, user, gateway), ttl) == 1 then
    redis.call('PEXPIRE', prefix .. 'presence:u:' .. user, ttl)
  else
    redis.call('SREM', KEYS[1], user)
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('PEXPIRE', KEYS[2], ttl)
`)

/** KEYS: gateway's users. ARGV: prefix, gateway, ttl ms, then user and connection, pairwise. */
const RESTORE = script<number>("imPresenceRestore", `${CONNECTIONS_KEY_LUA}
local prefix, gateway, ttl = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV, 2 do
  local user, connection = ARGV[i], ARGV[i + 1]
  local connections, gateways = connectionsKey(prefix, user, gateway), prefix .. 'presence:u:' .. user
  redis.call('SADD', connections, connection)
  redis.call('SADD', gateways, gateway)
  redis.call('SADD', KEYS[1], user)
  redis.call('PEXPIRE', connections, ttl)
  redis.call('PEXPIRE', gateways, ttl)
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`)

/** KEYS: gateway's known key. ARGV: ttl ms. */
const KNOWN = script<number>("imPresenceKnown", `
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
`)

/** Connections per RESTORE call. */
const RESTORE_CHUNK = 500

/** ARGV: prefix, then users. Returns, per user, the gateways with a live connection set. */
const LOOKUP = script<Array<Array<string>>>("imPresenceLookup", `${CONNECTIONS_KEY_LUA}
local prefix = ARGV[1]
local found = {}
for i = 2, #ARGV do
  local user = ARGV[i]
  local gatewaysKey = prefix .. 'presence:u:' .. user
  local alive = {}
  for _, gateway in ipairs(redis.call('SMEMBERS', gatewaysKey)) do
    if redis.call('EXISTS', connectionsKey(prefix, user, gateway)) == 1 then
      alive[#alive + 1] = gateway
    else
      redis.call('SREM', gatewaysKey, gateway)
    end
  end
  found[#found + 1] = alive
end
return found
`)

export interface RedisPresenceOptions {
  readonly url: Redacted.Redacted<string>
  /** Prefix of every key this adapter writes (tests use one per run). */
  readonly keyPrefix: string
  /** How long entries live after the gateway's last register or refresh. */
  readonly ttl: Duration.Input
  readonly connectTimeout?: Duration.Input | undefined
}

export const make = (options: RedisPresenceOptions): Effect.Effect<Presence["Service"], PortError, Scope.Scope> =>
  Effect.gen(function*() {
    const ttlMs = Math.max(1, Math.round(Duration.toMillis(options.ttl)))
    const { run } = yield* connectWithScripts({ url: options.url, connectTimeout: options.connectTimeout }, [
      REGISTER,
      UNREGISTER,
      REFRESH,
      RESTORE,
      KNOWN,
      LOOKUP
    ])

    const prefix = options.keyPrefix
    const connectionsKey = (user: UserId, gateway: GatewayId) =>
      `${prefix}presence:c:${Buffer.byteLength(user)}:${user}:${gateway}`
    const gatewaysKey = (user: UserId) => `${prefix}presence:u:${user}`
    const usersKey = (gateway: GatewayId) => `${prefix}presence:g:${gateway}`
    const knownKey = (gateway: GatewayId) => `${prefix}presence:k:${gateway}`

    const register = Effect.fn("RedisPresence.register")(function*(user: UserId, gateway: GatewayId, connection: string) {
      yield* redisCall("Presence", "register", () =>
        run(REGISTER, [connectionsKey(user, gateway), gatewaysKey(user), usersKey(gateway)], [connection, gateway, user, ttlMs]))
    })

    const unregister = Effect.fn("RedisPresence.unregister")(
      function*(user: UserId, gateway: GatewayId, connection: string) {
        yield* redisCall("Presence", "unregister", () =>
          run(UNREGISTER, [connectionsKey(user, gateway), gatewaysKey(user), usersKey(gateway)], [connection, gateway, user]))
      }
    )

    const refresh = Effect.fn("RedisPresence.refresh")(function*(gateway: GatewayId) {
      return (yield* redisCall("Presence", "refresh", () => run(REFRESH, [usersKey(gateway), knownKey(gateway)], [prefix, gateway, ttlMs]))) === 1
    })

    // Known only once every connection is back: a restore cut short is done again at the next refresh.
    const restore = Effect.fn("RedisPresence.restore")(function*(gateway: GatewayId, entries: ReadonlyArray<PresenceEntry>) {
      for (let i = 0; i < entries.length; i += RESTORE_CHUNK) {
        const pairs = entries.slice(i, i + RESTORE_CHUNK).flatMap(({ connection, user }) => [user, connection])
        yield* redisCall("Presence", "restore", () => run(RESTORE, [usersKey(gateway)], [prefix, gateway, ttlMs, ...pairs]))
      }
      yield* redisCall("Presence", "restore", () => run(KNOWN, [knownKey(gateway)], [ttlMs]))
    })

    const lookup = Effect.fn("RedisPresence.lookup")(function*(users: ReadonlyArray<UserId>) {
      const found = new Map<UserId, ReadonlyArray<GatewayId>>()
      if (users.length === 0) return found
      const distinct = [...new Set(users)]
      const gateways = yield* redisCall("Presence", "lookup", () => run(LOOKUP, [], [prefix, ...distinct]))
      distinct.forEach((user, i) => {
        const held = gateways[i] ?? []
        if (held.length > 0) found.set(user, held.map((gateway) => gateway as GatewayId))
      })
      return found
    })

    return Presence.of({ register, unregister, refresh, restore, lookup })
  }).pipe(Effect.annotateLogs({ service: "RedisPresence" }))

/** Config: REDIS_URL, REDIS_KEY_PREFIX, PRESENCE_TTL, REDIS_CONNECT_TIMEOUT. */
export const config = Config.all({
  ...connectionSettings,
  ttl: Settings.positiveDuration("PRESENCE_TTL", Duration.seconds(90))
})

/** Presence on the Redis at REDIS_URL. */
export const layer: Layer.Layer<Presence, PortError | Config.ConfigError> = Layer.effect(
  Presence,
  Effect.gen(function*() {
    return yield* make(yield* config)
  })
)

/** The module as one value, for `import { RedisPresence } from "@im/redis/RedisPresence"`. */
export const RedisPresence = { make, config, layer } as const
