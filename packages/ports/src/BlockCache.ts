import * as Settings from "./Settings.ts"
import type { UserId } from "@im/domain/Ids"
import { Clock, Config, Context, Duration, Effect, Layer } from "effect"
import type { BlockPair } from "./FriendStore.ts"
import type { CacheLookup } from "./GroupMemberCache.ts"
import type { PortError } from "./PortError.ts"
import { VersionedEntries } from "./VersionedEntries.ts"

/** `BLOCK_CACHE_TTL` (default 10 minutes): how long a user's cached block list lives, in this process or in Redis. */
export const BlockCacheTtl = Settings.positiveDuration("BLOCK_CACHE_TTL", Duration.minutes(10))

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
      const cached = new VersionedEntries<UserId, ReadonlySet<UserId>>(
        Duration.toMillis(Duration.fromInputUnsafe(options.ttl)),
        options.maxUsers
      )
      return BlockCache.of({
        lookup: (pairs) =>
          Effect.map(Clock.currentTimeMillis, (now) =>
            pairs.map(({ blocked, blocker }): CacheLookup<boolean> => {
              const list = cached.get(blocker, now)
              return list === undefined ? { _tag: "Miss", version: cached.versionOf(blocker) } : { _tag: "Hit", value: list.has(blocked) }
            })),
        fill: (blocker, version, blocked) => Effect.map(Clock.currentTimeMillis, (now) => cached.fill(blocker, version, new Set(blocked), now)),
        invalidate: (users) => Effect.sync(() => cached.invalidate(users))
      })
    })

  /** BLOCK_CACHE_TTL (default 10 minutes) and BLOCK_CACHE_MAX_USERS (default 100,000). */
  static readonly layerMemoryConfig = Layer.unwrap(
    Effect.map(
      Config.all({
        ttl: BlockCacheTtl,
        maxUsers: Settings.int("BLOCK_CACHE_MAX_USERS", 100_000, { minimum: 1 })
      }),
      BlockCache.layerMemory
    )
  )
}
