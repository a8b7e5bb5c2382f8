import * as Settings from "@im/ports/Settings"
import type { GatewayId, UserId } from "@im/domain/Ids"
import { PortError } from "@im/ports/PortError"
import { Presence, type PresenceEntry } from "@im/ports/Presence"
import { Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { connectionSettings, redisCall } from "./RedisClient.ts"
import { connectWithScripts, script } from "./RedisScripts.ts"

/*
 * Keys:
 *   <prefix>presence:c:<len(user)>:<user>:<gateway>  set of the user's connection ids on the gateway
 *   <prefix>presence:u:<user>                        set of gateways that may hold the user
 *   <prefix>presence:g:<gateway>                     set of users the gateway holds
 *   <prefix>presence:gateways                        set of gateways that hold entries
 *   <prefix>presence:a:<gateway>                     the gateway is alive: expires PRESENCE_TTL after
 *                                                    its last register, refresh or restore call
 *   <prefix>presence:k:<gateway>                     the run of the gateway that restored it last
 *                                                    (set and renewed with the alive key, which a
 *                                                    register also renews: it never outlives it)
 *   <prefix>presence:r:<gateway>                     the run of the gateway restoring it now
 * A user is on a gateway while its connection set exists and the gateway is alive. Only the last
 * three keys expire, so a refresh is a few commands however many connections the gateway holds
 * (it used to extend each connection set: about 76 ms of Redis at 20,000 users). What a dead
 * gateway left is removed by the others' refreshes: each looks at two gateways of the set at
 * random and removes up to SWEEP_CHUNK users' entries of one that is not alive. The user's set of
 * gateways is cleaned as scripts come across stale members. A gateway whose alive key lapsed may
 * have lost entries to a sweep: its known key lapsed too, so its refresh answers false and it
 * restores them.
 * The sets must not be evicted: run Redis with `maxmemory-policy noeviction` (its default).
 *
 * Redis may lose everything (a restart with no persistence): the known key goes with the rest,
 * `refresh` answers false, and the gateway restores its connections: its first RESTORE call
 * deletes every connection set the gateway had and names the run restoring; each later one, and
 * the KNOWN call that ends it, does its part only while that name is still there (it is gone if
 * Redis lost its data meanwhile). The scripts build keys from the prefix (standalone Redis, not
 * Cluster); `<len(user)>` is in bytes, the same in JS and in Lua.
 */

const KEYS_LUA = `
local function connectionsKey(prefix, user, gateway)
  return prefix .. 'presence:c:' .. #user .. ':' .. user .. ':' .. gateway
end
local function gatewaysKey(prefix, user) return prefix .. 'presence:u:' .. user end
local function usersKey(prefix, gateway) return prefix .. 'presence:g:' .. gateway end
local function aliveKey(prefix, gateway) return prefix .. 'presence:a:' .. gateway end
`

/**
 * KEYS: connections, user's gateways, gateway's users, gateway's alive key, the set of gateways.
 * ARGV: connection, gateway, user, ttl ms. (PERSIST: the versions before `fc75b1a` gave the sets
 * a TTL.)
 */
const REGISTER = script<number>("imPresenceRegister", `
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[3])
redis.call('SADD', KEYS[5], ARGV[2])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
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

/**
 * KEYS: gateway's alive key, its known key, the set of gateways. ARGV: prefix, gateway, ttl ms,
 * run, sweep chunk. Returns 1, and keeps the gateway alive, while it is known for `run`; first
 * removes some of what a dead gateway left.
 */
const REFRESH = script<number>("imPresenceRefresh", `${KEYS_LUA}
local prefix, gateway, ttl, run, chunk = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
for _, other in ipairs(redis.call('SRANDMEMBER', KEYS[3], 2)) do
  if other ~= gateway and redis.call('EXISTS', aliveKey(prefix, other)) == 0 then
    local users = usersKey(prefix, other)
    for _, user in ipairs(redis.call('SPOP', users, chunk)) do
      redis.call('DEL', connectionsKey(prefix, user, other))
      redis.call('SREM', gatewaysKey(prefix, user), other)
    end
    if redis.call('EXISTS', users) == 0 then redis.call('SREM', KEYS[3], other) end
    break
  end
end
if redis.call('GET', KEYS[2]) ~= run then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`)

/**
 * KEYS: gateway's users, its restoring key, its known key, its alive key, the set of gateways.
 * ARGV: prefix, gateway, ttl ms, run, "1" for the first call of a restore, then user and
 * connection, pairwise. Returns 0 when a later call finds the restore's name gone (Redis lost
 * its data meanwhile).
 */
const RESTORE = script<number>("imPresenceRestore", `${KEYS_LUA}
local prefix, gateway, ttl, run = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if ARGV[5] == '1' then
  for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    redis.call('DEL', connectionsKey(prefix, user, gateway))
    redis.call('SREM', gatewaysKey(prefix, user), gateway)
  end
  redis.call('DEL', KEYS[1], KEYS[3])
  redis.call('SET', KEYS[2], run, 'PX', ttl)
  redis.call('SADD', KEYS[5], gateway)
elseif redis.call('GET', KEYS[2]) ~= run then
  return 0
end
for i = 6, #ARGV, 2 do
  local user, connection = ARGV[i], ARGV[i + 1]
  local connections, gateways = connectionsKey(prefix, user, gateway), gatewaysKey(prefix, user)
  redis.call('SADD', connections, connection)
  redis.call('SADD', gateways, gateway)
  redis.call('PERSIST', connections)
  redis.call('PERSIST', gateways)
  redis.call('SADD', KEYS[1], user)
end
redis.call('SET', KEYS[4], '1', 'PX', ttl)
return 1
`)

/** KEYS: gateway's restoring key, its known key, its alive key. ARGV: run, ttl ms. Returns 0 when the restore's name is gone. */
const KNOWN = script<number>("imPresenceKnown", `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return 1
`)

/** Connections per RESTORE call. */
const RESTORE_CHUNK = 500

/** Users a refresh removes the entries of, of one gateway that is not alive. */
const SWEEP_CHUNK = 500

/** A gateway's own keys (above), and the set of gateways. */
export const gatewayKeys = {
  users: (prefix: string, gateway: string) => `${prefix}presence:g:${gateway}`,
  alive: (prefix: string, gateway: string) => `${prefix}presence:a:${gateway}`,
  known: (prefix: string, gateway: string) => `${prefix}presence:k:${gateway}`,
  restoring: (prefix: string, gateway: string) => `${prefix}presence:r:${gateway}`,
  all: (prefix: string) => `${prefix}presence:gateways`
}

/** The restore's scripts, for the test that runs them around a data loss. */
export const restoreScripts = { RESTORE, KNOWN }

/** ARGV: prefix, then users. Returns, per user, the alive gateways with a connection set of the user. */
const LOOKUP = script<Array<Array<string>>>("imPresenceLookup", `${KEYS_LUA}
local prefix = ARGV[1]
local alive = {}
local found = {}
for i = 2, #ARGV do
  local user = ARGV[i]
  local gateways = gatewaysKey(prefix, user)
  local holding = {}
  for _, gateway in ipairs(redis.call('SMEMBERS', gateways)) do
    if redis.call('EXISTS', connectionsKey(prefix, user, gateway)) == 0 then
      redis.call('SREM', gateways, gateway)
    else
      if alive[gateway] == nil then alive[gateway] = redis.call('EXISTS', aliveKey(prefix, gateway)) == 1 end
      if alive[gateway] then holding[#holding + 1] = gateway end
    end
  end
  found[#found + 1] = holding
end
return found
`)

export interface RedisPresenceOptions {
  readonly url: Redacted.Redacted<string>
  /** Prefix of every key this adapter writes (tests use one per run). */
  readonly keyPrefix: string
  /** How long a gateway's entries count after its last register, refresh or restore. */
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
    const usersKey = (gateway: GatewayId) => gatewayKeys.users(prefix, gateway)
    const aliveKey = (gateway: GatewayId) => gatewayKeys.alive(prefix, gateway)
    const knownKey = (gateway: GatewayId) => gatewayKeys.known(prefix, gateway)
    const restoringKey = (gateway: GatewayId) => gatewayKeys.restoring(prefix, gateway)
    const allKey = gatewayKeys.all(prefix)

    const register = Effect.fn("RedisPresence.register")(function*(user: UserId, gateway: GatewayId, connection: string) {
      yield* redisCall("Presence", "register", () =>
        run(REGISTER, [connectionsKey(user, gateway), gatewaysKey(user), usersKey(gateway), aliveKey(gateway), allKey], [
          connection,
          gateway,
          user,
          ttlMs
        ]))
    })

    const unregister = Effect.fn("RedisPresence.unregister")(
      function*(user: UserId, gateway: GatewayId, connection: string) {
        yield* redisCall("Presence", "unregister", () =>
          run(UNREGISTER, [connectionsKey(user, gateway), gatewaysKey(user), usersKey(gateway)], [connection, gateway, user]))
      }
    )

    const refresh = Effect.fn("RedisPresence.refresh")(function*(gateway: GatewayId, runId: string) {
      const known = yield* redisCall("Presence", "refresh", () => run(REFRESH, [aliveKey(gateway), knownKey(gateway), allKey], [prefix, gateway, ttlMs, runId, SWEEP_CHUNK]))
      return known === 1
    })

    const restore = Effect.fn("RedisPresence.restore")(function*(gateway: GatewayId, runId: string, entries: ReadonlyArray<PresenceEntry>) {
      const keys = [usersKey(gateway), restoringKey(gateway), knownKey(gateway), aliveKey(gateway), allKey]
      const lost = new PortError({ port: "Presence", operation: "restore (Redis lost its data meanwhile)", retryable: true })
      // One call at least: the first deletes what the gateway had.
      for (let i = 0; i === 0 || i < entries.length; i += RESTORE_CHUNK) {
        const pairs = entries.slice(i, i + RESTORE_CHUNK).flatMap(({ connection, user }) => [user, connection])
        const done = yield* redisCall("Presence", "restore", () => run(RESTORE, keys, [prefix, gateway, ttlMs, runId, i === 0 ? "1" : "0", ...pairs]))
        if (done !== 1) return yield* lost
      }
      const known = yield* redisCall("Presence", "restore", () => run(KNOWN, [restoringKey(gateway), knownKey(gateway), aliveKey(gateway)], [runId, ttlMs]))
      if (known !== 1) return yield* lost
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
