import type { UserId } from "@im/domain/Ids"
import { Effect, Layer, Option } from "effect"
import { BlockCache } from "./BlockCache.ts"
import { invalidatingWrite } from "./CacheWrites.ts"
import { type BlockPair, FriendStore } from "./FriendStore.ts"
import type { PortError } from "./PortError.ts"

/**
 * `inner` with `blocking` served from the BlockCache: the pairs whose blocker's list is cached
 * are answered from it; the distinct blockers that missed are loaded in one `blockedBy` call,
 * answered from what it loaded, and cached, each only if no write invalidated that blocker
 * meanwhile. When the cache cannot be reached, the check goes to the store.
 *
 * `block` and `unblock` go to the store and then invalidate both users' entries (also when the
 * write failed or was interrupted: it may have committed); one whose invalidation fails fails,
 * so that its caller does not take a block for done while a send could still pass. No other
 * write changes a blocked entry (`request`, `accept` and `unfriend` only add or remove
 * friends, and leave a blocked entry as it is), so they go to the store untouched.
 */
export const make = (inner: FriendStore["Service"], cache: BlockCache["Service"]): FriendStore["Service"] => {
  /** Loads the lists of the blockers that missed, and caches each with the version it missed with. */
  const load = Effect.fnUntraced(function*(missed: ReadonlyMap<UserId, string>) {
    const loaded = yield* inner.blockedBy([...missed.keys()])
    yield* Effect.forEach(
      missed,
      ([blocker, version]) =>
        cache.fill(blocker, version, loaded.get(blocker) ?? []).pipe(
          Effect.catchTag("PortError", (error) => Effect.logWarning("block cache not filled", error))
        ),
      { concurrency: "unbounded", discard: true }
    )
    return new Map([...loaded].map(([blocker, blocked]) => [blocker, new Set(blocked)]))
  })

  const blocking = Effect.fn("CachedFriendStore.blocking")(function*(pairs: ReadonlyArray<BlockPair>) {
    if (pairs.length === 0) return []
    const found = yield* cache.lookup(pairs).pipe(
      Effect.map(Option.some),
      Effect.catchTag("PortError", (error) =>
        Effect.logWarning("block cache unavailable; asking the store", error).pipe(Effect.as(Option.none())))
    )
    if (Option.isNone(found)) return yield* inner.blocking(pairs)
    const missed = new Map<UserId, string>()
    found.value.forEach((lookup, i) => {
      if (lookup._tag === "Miss") missed.set(pairs[i]!.blocker, lookup.version)
    })
    const loaded = missed.size === 0 ? new Map<UserId, ReadonlySet<UserId>>() : yield* load(missed)
    return pairs.filter((pair, i) => {
      const lookup = found.value[i]!
      return lookup._tag === "Hit" ? lookup.value : loaded.get(pair.blocker)?.has(pair.blocked) === true
    })
  })

  /** Runs a write between `user` and `target`, then invalidates both whatever became of it. */
  const write = <A>(user: UserId, target: UserId, effect: Effect.Effect<A, PortError>) =>
    invalidatingWrite(cache.invalidate(user === target ? [user] : [user, target]), effect, "block cache")

  return FriendStore.of({
    ...inner,
    blocking,
    block: (user, target, now) => write(user, target, inner.block(user, target, now)),
    unblock: (user, target, now) => write(user, target, inner.unblock(user, target, now))
  })
}

/** The decorator as a layer: the FriendStore in context, behind the BlockCache in context. */
export const layer: Layer.Layer<FriendStore, never, FriendStore | BlockCache> = Layer.effect(
  FriendStore,
  Effect.gen(function*() {
    return make(yield* FriendStore, yield* BlockCache)
  })
)

/**
 * Standalone: the FriendStore in context behind a cache in this process (BLOCK_CACHE_TTL,
 * BLOCK_CACHE_MAX_USERS), where every write comes through this same decorator.
 */
export const layerMemory = layer.pipe(Layer.provide(BlockCache.layerMemoryConfig))
