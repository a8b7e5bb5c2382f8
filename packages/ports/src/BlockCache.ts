import type { UserId } from "@im/domain/Ids"
import { Clock, Config, Context, Duration, Effect, Layer } from "effect"
import type { BlockPair } from "./FriendStore.ts"
import type { CacheLookup } from "./GroupMemberCache.ts"
import type { PortError } from "./PortError.ts"

/**
 * A cache of block relations in front of the FriendStore (see CachedFriendStore.ts): every
 * one-to-one send asks whether its receiver blocked its sender, without asking PostgreSQL each
 * time. An entry is one user's list of the users they blocked, keyed by that user (the
 * blocker, the receiver of a send). Like the GroupMemberCache, each user has a version that
 * every invalidation replaces and that is never reused: a `fill` with a version a write has
 * replaced (or that expired) stores nothing, so a load that raced a write is never cached.
 * Entries live at most their TTL, so what a lost invalidation left behind goes away by itself.
 */
export class BlockCache extends Context.Service<BlockCache, {
  /**
   * For each pair, in order: whether its blocker blocked its blocked user, from the blocker's
   * cached list, or a miss with the blocker's current version. Pairs of one blocker answer
   * alike (all hits, or all misses with the same version).
   */
  readonly lookup: (pairs: ReadonlyArray<BlockPair>) => Effect.Effect<ReadonlyArray<CacheLookup<boolean>>, PortError>
  /** Caches the users `blocker` blocked if the blocker's version is still `version`; answers whether it did. */
  readonly fill: (blocker: UserId, version: string, blocked: ReadonlyArray<UserId>) => Effect.Effect<boolean, PortError>
  /** After a write that may have changed the users' lists: a new version each, and no cached entry. */
  readonly invalidate: (users: ReadonlyArray<UserId>) => Effect.Effect<void, PortError>
}>()("@im/ports/BlockCache") {
  /**
   * In this process (standalone): entries expire after `ttl`; past `maxUsers` entries the
   * oldest go first.
   */
  static readonly layerMemory = (options: { readonly ttl: Duration.Input; readonly maxUsers: number }) =>
    Layer.sync(BlockCache, () => {
      const ttl = Duration.toMillis(Duration.fromInputUnsafe(options.ttl))
      interface Entry {
        readonly blocked: ReadonlySet<UserId>
        readonly expiresAt: number
      }
      const entries = new Map<UserId, Entry>()
      // A counter of this process: a version is never handed out twice, so forgetting one is safe.
      const versions = new Map<UserId, string>()
      let counter = 0
      const freshVersion = () => `${++counter}`
      const versionOf = (user: UserId) => {
        let version = versions.get(user)
        if (version === undefined) {
          version = freshVersion()
          versions.set(user, version)
          if (versions.size > options.maxUsers * 2) versions.delete(versions.keys().next().value!)
        }
        return version
      }
      const entryOf = (user: UserId, now: number) => {
        const entry = entries.get(user)
        if (entry !== undefined && entry.expiresAt > now) return entry
        if (entry !== undefined) entries.delete(user)
        return undefined
      }
      return BlockCache.of({
        lookup: (pairs) =>
          Effect.map(Clock.currentTimeMillis, (now) =>
            pairs.map(({ blocked, blocker }): CacheLookup<boolean> => {
              const entry = entryOf(blocker, now)
              return entry === undefined ? { _tag: "Miss", version: versionOf(blocker) } : { _tag: "Hit", value: entry.blocked.has(blocked) }
            })),
        fill: (blocker, version, blocked) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            if (versions.get(blocker) !== version) return false
            entries.delete(blocker)
            entries.set(blocker, { blocked: new Set(blocked), expiresAt: now + ttl })
            if (entries.size > options.maxUsers) entries.delete(entries.keys().next().value!)
            return true
          }),
        invalidate: (users) =>
          Effect.sync(() => {
            for (const user of users) {
              entries.delete(user)
              versions.delete(user)
              versions.set(user, freshVersion())
            }
          })
      })
    })

  /** BLOCK_CACHE_TTL (default 10 minutes) and BLOCK_CACHE_MAX_USERS (default 100,000). */
  static readonly layerMemoryConfig = Layer.unwrap(
    Effect.map(
      Config.all({
        ttl: Config.Duration("BLOCK_CACHE_TTL").pipe(Config.withDefault(Duration.minutes(10))),
        maxUsers: Config.Int("BLOCK_CACHE_MAX_USERS").pipe(Config.withDefault(100_000))
      }),
      BlockCache.layerMemory
    )
  )
}
