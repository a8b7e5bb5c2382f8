import type { UserId } from "@im/domain/Ids"
import { BlockCache, BlockCacheTtl } from "@im/ports/BlockCache"
import * as CachedFriendStore from "@im/ports/CachedFriendStore"
import type { BlockPair, FriendStore } from "@im/ports/FriendStore"
import type { CacheLookup } from "@im/ports/GroupMemberCache"
import type { PortError } from "@im/ports/PortError"
import { Config, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { connectionSettings, redisCall, redisCallOnce } from "./RedisClient.ts"
import { connectWithScripts, script } from "./RedisScripts.ts"

/*
 * Keys per user (a blocker), both expiring BLOCK_CACHE_TTL after they were written:
 *   <prefix>block:b:<user>  hash: field "" = "1" (the entry exists, even when they blocked
 *                           nobody), and one field per user they blocked
 *   <prefix>block:v:<user>  the user's cache version: a random string, replaced by every write
 * As in RedisGroupMemberCache: a check that misses gets the version (made when missing) in the
 * same step, loads the list from the store and fills the entry only if the version is still the
 * one it got; a block or unblock commits, then replaces both users' versions and deletes their
 * entries in one step.
 */

type LookupReply = Array<[hit: 1, blocked: Array<0 | 1>] | [hit: 0, version: string]>

/**
 * KEYS: entry, version of each blocker. ARGV: ttl ms, then per blocker: fresh version, count,
 * and that many users. Returns per blocker {1, {1 if blocked else 0, per user}} or {0, version}.
 */
const LOOKUP = script<LookupReply>("imBlockLookup", `
local ttl = ARGV[1]
local found = {}
local a = 2
for i = 1, #KEYS, 2 do
  local fresh, count = ARGV[a], tonumber(ARGV[a + 1])
  if redis.call('HEXISTS', KEYS[i], '') == 1 then
    local flags = {}
    for j = 1, count do flags[j] = redis.call('HEXISTS', KEYS[i], ARGV[a + 1 + j]) end
    found[#found + 1] = {1, flags}
  else
    local version = redis.call('GET', KEYS[i + 1])
    if not version then
      version = fresh
      redis.call('SET', KEYS[i + 1], version, 'PX', ttl)
    end
    found[#found + 1] = {0, version}
  end
  a = a + 2 + count
end
return found
`)

/** KEYS: entry, version. ARGV: expected version, ttl ms, then the blocked users. Returns 1 if filled. */
const FILL = script<number>("imBlockFill", `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '', '1')
for i = 3, #ARGV, 200 do
  local fields = {}
  for j = i, math.min(i + 199, #ARGV) do
    fields[#fields + 1] = ARGV[j]
    fields[#fields + 1] = '1'
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

/** KEYS: entry, version of each user. ARGV: ttl ms, then a new version per user. */
const INVALIDATE = script<number>("imBlockInvalidate", `
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i + 1], ARGV[(i + 1) / 2 + 1], 'PX', ARGV[1])
  redis.call('DEL', KEYS[i])
end
return 1
`)

export interface RedisBlockCacheOptions {
  readonly url: Redacted.Redacted<string>
  /** Prefix of every key this adapter writes (tests use one per run). */
  readonly keyPrefix: string
  /** How long an entry (and a version) lives after it was written. */
  readonly ttl: Duration.Input
  readonly connectTimeout?: Duration.Input | undefined
}

export const make = (options: RedisBlockCacheOptions): Effect.Effect<BlockCache["Service"], PortError, Scope.Scope> =>
  Effect.gen(function*() {
    const ttlMs = Math.max(1, Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.ttl))))
    const { run } = yield* connectWithScripts({ url: options.url, connectTimeout: options.connectTimeout }, [LOOKUP, FILL, INVALIDATE])

    const keys = (user: UserId) => [`${options.keyPrefix}block:b:${user}`, `${options.keyPrefix}block:v:${user}`]
    const freshVersion = () => crypto.randomUUID()

    // Not retried: a check the cache cannot answer goes to the store, which is better than
    // waiting for Redis.
    const lookup = Effect.fn("RedisBlockCache.lookup")(function*(pairs: ReadonlyArray<BlockPair>) {
      if (pairs.length === 0) return []
      // Each blocker once, with the distinct users asked about.
      const asked = new Map<UserId, Map<UserId, number>>()
      for (const { blocked, blocker } of pairs) {
        let users = asked.get(blocker)
        if (users === undefined) asked.set(blocker, users = new Map())
        if (!users.has(blocked)) users.set(blocked, users.size)
      }
      const blockers = [...asked.keys()]
      const args = blockers.flatMap((blocker) => {
        const users = [...asked.get(blocker)!.keys()]
        return [freshVersion(), users.length, ...users]
      })
      const replies = yield* redisCallOnce("BlockCache", "lookup", () => run(LOOKUP, blockers.flatMap(keys), [ttlMs, ...args]))
      const answers = new Map(blockers.map((blocker, i) => [blocker, replies[i]!]))
      return pairs.map(({ blocked, blocker }): CacheLookup<boolean> => {
        const reply = answers.get(blocker)!
        return reply[0] === 0
          ? { _tag: "Miss", version: reply[1] }
          : { _tag: "Hit", value: reply[1][asked.get(blocker)!.get(blocked)!] === 1 }
      })
    })

    const fill = Effect.fn("RedisBlockCache.fill")(function*(blocker: UserId, version: string, blocked: ReadonlyArray<UserId>) {
      const filled = yield* redisCallOnce("BlockCache", "fill", () => run(FILL, keys(blocker), [version, ttlMs, ...new Set(blocked)]))
      return filled === 1
    })

    const invalidate = Effect.fn("RedisBlockCache.invalidate")(function*(users: ReadonlyArray<UserId>) {
      if (users.length === 0) return
      const distinct = [...new Set(users)]
      yield* redisCall("BlockCache", "invalidate", () =>
        run(INVALIDATE, distinct.flatMap(keys), [ttlMs, ...distinct.map(() => freshVersion())]))
    })

    return BlockCache.of({ lookup, fill, invalidate })
  }).pipe(Effect.annotateLogs({ service: "RedisBlockCache" }))

/** Config: REDIS_URL, REDIS_KEY_PREFIX, BLOCK_CACHE_TTL, REDIS_CONNECT_TIMEOUT. */
export const config = Config.all({
  ...connectionSettings,
  ttl: BlockCacheTtl
})

/** The cache on the Redis at REDIS_URL. */
export const layer: Layer.Layer<BlockCache, PortError | Config.ConfigError> = Layer.effect(
  BlockCache,
  Effect.gen(function*() {
    return yield* make(yield* config)
  })
)

/**
 * The FriendStore in context behind the cache on Redis: what chat (the checks) and api (the
 * blocks and unblocks, which invalidate) run on.
 */
export const layerCached: Layer.Layer<FriendStore, PortError | Config.ConfigError, FriendStore> = CachedFriendStore.layer.pipe(
  Layer.provide(layer)
)

/** The module as one value, for `import { RedisBlockCache } from "@im/redis/RedisBlockCache"`. */
export const RedisBlockCache = { make, config, layer, layerCached } as const
