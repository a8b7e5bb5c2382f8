import type { GroupMember, GroupRole } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import * as CachedGroupStore from "@im/ports/CachedGroupStore"
import { type CacheLookup, GroupCacheTtl, GroupMemberCache } from "@im/ports/GroupMemberCache"
import type { GroupStore } from "@im/ports/GroupStore"
import type { PortError } from "@im/ports/PortError"
import { Config, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { connectionSettings, redisCall, redisCallOnce } from "./RedisClient.ts"
import { connectWithScripts, script } from "./RedisScripts.ts"

/*
 * Keys per group, both expiring GROUP_CACHE_TTL after they were written:
 *   <prefix>group:m:<group>  hash: field "" = "1" (the entry exists, even with no members), and
 *                            per member user_id = "<position>|<role>|<joined_at>"
 *   <prefix>group:v:<group>  the group's cache version: a random string, replaced by every write
 * A reader that misses gets the version (made when missing) in the same step; it loads the
 * members from the store and fills the entry only if the version is still the one it got. A
 * writer commits, then replaces the version and deletes the entry in one step. Versions are
 * random, never reused: a fill can only succeed if no write (nor expiry) came in between.
 */

type LookupReply<A> = [hit: 1, value: A] | [hit: 0, version: string]

/** Makes the version when missing. KEYS: entry, version. ARGV: fresh version, ttl ms. */
const VERSION_LUA = `
local function currentVersion()
  local version = redis.call('GET', KEYS[2])
  if not version then
    version = ARGV[1]
    redis.call('SET', KEYS[2], version, 'PX', ARGV[2])
  end
  return version
end
`

/** KEYS: entry, version. ARGV: fresh version, ttl ms. Returns {1, hgetall} or {0, version}. */
const MEMBERS = script<LookupReply<Array<string>>>("imGroupMembers", `${VERSION_LUA}
local entry = redis.call('HGETALL', KEYS[1])
if #entry > 0 then return {1, entry} end
return {0, currentVersion()}
`)

/**
 * KEYS: entry, version. ARGV: fresh version, ttl ms, user. Returns {1, member value or ""} or
 * {0, version}.
 */
const ROLE = script<LookupReply<string>>("imGroupRole", `${VERSION_LUA}
local found = redis.call('HMGET', KEYS[1], '', ARGV[3])
if found[1] then return {1, found[2] or ''} end
return {0, currentVersion()}
`)

/** KEYS: entry, version. ARGV: expected version, ttl ms, then field, value pairs. Returns 1 if filled. */
const FILL = script<number>("imGroupFill", `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '', '1')
local i = 3
while i <= #ARGV do
  local last = math.min(i + 399, #ARGV)
  redis.call('HSET', KEYS[1], unpack(ARGV, i, last))
  i = last + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

/** KEYS: entry, version. ARGV: new version, ttl ms. */
const INVALIDATE = script<number>("imGroupInvalidate", `
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[1])
return 1
`)

export interface RedisGroupMemberCacheOptions {
  readonly url: Redacted.Redacted<string>
  /** Prefix of every key this adapter writes (tests use one per run). */
  readonly keyPrefix: string
  /** How long an entry (and a version) lives after it was written. */
  readonly ttl: Duration.Input
  readonly connectTimeout?: Duration.Input | undefined
}

const decodeMember = (user: string, value: string): { readonly position: number; readonly member: GroupMember } => {
  const [position, role, joinedAt] = value.split("|")
  return {
    position: Number(position),
    member: { user_id: user as UserId, role: role as GroupRole, joined_at: Number(joinedAt) }
  }
}

/**
 * Reads are not retried: a read the cache cannot answer goes to the store, which is better
 * than waiting for Redis.
 */
const readCall = <A>(operation: string, call: () => Promise<A>) => redisCallOnce("GroupMemberCache", operation, call)

export const make = (
  options: RedisGroupMemberCacheOptions
): Effect.Effect<GroupMemberCache["Service"], PortError, Scope.Scope> =>
  Effect.gen(function*() {
    const ttlMs = Math.max(1, Math.round(Duration.toMillis(Duration.fromInputUnsafe(options.ttl))))
    const { run } = yield* connectWithScripts({ url: options.url, connectTimeout: options.connectTimeout }, [
      MEMBERS,
      ROLE,
      FILL,
      INVALIDATE
    ])

    const keys = (group: GroupId) => [`${options.keyPrefix}group:m:${group}`, `${options.keyPrefix}group:v:${group}`]
    const freshVersion = () => crypto.randomUUID()

    const members = Effect.fn("RedisGroupMemberCache.members")(function*(group: GroupId) {
      const reply = yield* readCall("members", () => run(MEMBERS, keys(group), [freshVersion(), ttlMs]))
      if (reply[0] === 0) return { _tag: "Miss", version: reply[1] } satisfies CacheLookup<never>
      const found: Array<{ readonly position: number; readonly member: GroupMember }> = []
      const fields = reply[1]
      for (let i = 0; i < fields.length; i += 2) {
        if (fields[i] !== "") found.push(decodeMember(fields[i]!, fields[i + 1]!))
      }
      found.sort((a, b) => a.position - b.position)
      return { _tag: "Hit", value: found.map((entry) => entry.member) } satisfies CacheLookup<ReadonlyArray<GroupMember>>
    })

    const role = Effect.fn("RedisGroupMemberCache.role")(function*(group: GroupId, user: UserId) {
      const reply = yield* readCall("role", () => run(ROLE, keys(group), [freshVersion(), ttlMs, user]))
      if (reply[0] === 0) return { _tag: "Miss", version: reply[1] } satisfies CacheLookup<never>
      const value = reply[1] === "" ? Option.none() : Option.some(decodeMember(user, reply[1]).member.role)
      return { _tag: "Hit", value } satisfies CacheLookup<Option.Option<GroupRole>>
    })

    const fill = Effect.fn("RedisGroupMemberCache.fill")(
      function*(group: GroupId, version: string, groupMembers: ReadonlyArray<GroupMember>) {
        const pairs = groupMembers.flatMap((m, position) => [m.user_id, `${position}|${m.role}|${m.joined_at}`])
        const filled = yield* readCall("fill", () => run(FILL, keys(group), [version, ttlMs, ...pairs]))
        return filled === 1
      }
    )

    const invalidate = Effect.fn("RedisGroupMemberCache.invalidate")(function*(groups: ReadonlyArray<GroupId>) {
      yield* Effect.forEach(
        groups,
        (group) =>
          redisCall("GroupMemberCache", "invalidate", () =>
            run(INVALIDATE, keys(group), [freshVersion(), ttlMs])),
        { discard: true }
      )
    })

    return GroupMemberCache.of({ members, role, fill, invalidate })
  }).pipe(Effect.annotateLogs({ service: "RedisGroupMemberCache" }))

/** Config: REDIS_URL, REDIS_KEY_PREFIX, GROUP_CACHE_TTL, REDIS_CONNECT_TIMEOUT. */
export const config = Config.all({
  ...connectionSettings,
  ttl: GroupCacheTtl
})

/** The cache on the Redis at REDIS_URL. */
export const layer: Layer.Layer<GroupMemberCache, PortError | Config.ConfigError> = Layer.effect(
  GroupMemberCache,
  Effect.gen(function*() {
    return yield* make(yield* config)
  })
)

/** The GroupStore in context behind the cache on Redis: what chat, consumer and api run on. */
export const layerCached: Layer.Layer<GroupStore, PortError | Config.ConfigError, GroupStore> = CachedGroupStore.layer.pipe(
  Layer.provide(layer)
)

/** The module as one value, for `import { RedisGroupMemberCache } from "@im/redis/RedisGroupMemberCache"`. */
export const RedisGroupMemberCache = { make, config, layer, layerCached } as const
