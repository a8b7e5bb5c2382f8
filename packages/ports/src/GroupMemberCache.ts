import type { GroupMember, GroupRole } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { Clock, Config, Context, Duration, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * What a lookup found: the cached value, or a miss with the group's current cache version. A
 * reader that loads the members from the store after a miss hands that version back to `fill`,
 * which stores them only if no write has changed the version since: a load that raced a write
 * is never cached.
 */
export type CacheLookup<A> =
  | { readonly _tag: "Hit"; readonly value: A }
  | { readonly _tag: "Miss"; readonly version: string }

/**
 * A cache of groups' member lists, in front of the GroupStore (see CachedGroupStore.ts): a send
 * checks its sender's membership and the consumer reads a group's members for every batch,
 * without asking PostgreSQL each time. Versions are never reused, so a `fill` with a version a
 * write has replaced (or that expired) stores nothing. Entries live at most their TTL, so what a
 * lost invalidation left behind goes away by itself.
 */
export class GroupMemberCache extends Context.Service<GroupMemberCache, {
  /** The group's members as the store answered them (an unknown group: cached as none). */
  readonly members: (group: GroupId) => Effect.Effect<CacheLookup<ReadonlyArray<GroupMember>>, PortError>
  /** The user's role in the group (none: not a member), from the cached members. */
  readonly role: (group: GroupId, user: UserId) => Effect.Effect<CacheLookup<Option.Option<GroupRole>>, PortError>
  /** Caches the members if the group's version is still `version`; answers whether it did. */
  readonly fill: (group: GroupId, version: string, members: ReadonlyArray<GroupMember>) => Effect.Effect<boolean, PortError>
  /** After a write to the groups' members: a new version each, and no cached entry. */
  readonly invalidate: (groups: ReadonlyArray<GroupId>) => Effect.Effect<void, PortError>
}>()("@im/ports/GroupMemberCache") {
  /**
   * In this process (standalone): entries expire after `ttl`; past `maxGroups` entries the
   * oldest go first.
   */
  static readonly layerMemory = (options: { readonly ttl: Duration.Input; readonly maxGroups: number }) =>
    Layer.sync(GroupMemberCache, () => {
      const ttl = Duration.toMillis(Duration.fromInputUnsafe(options.ttl))
      interface Entry {
        readonly members: ReadonlyArray<GroupMember>
        readonly roles: ReadonlyMap<UserId, GroupRole>
        readonly expiresAt: number
      }
      const entries = new Map<GroupId, Entry>()
      // A counter of this process: a version is never handed out twice, so forgetting one is safe.
      const versions = new Map<GroupId, string>()
      let counter = 0
      const freshVersion = () => `${++counter}`
      const versionOf = (group: GroupId) => {
        let version = versions.get(group)
        if (version === undefined) {
          version = freshVersion()
          versions.set(group, version)
          if (versions.size > options.maxGroups * 2) versions.delete(versions.keys().next().value!)
        }
        return version
      }
      const lookup = <A>(group: GroupId, read: (entry: Entry) => A) =>
        Effect.map(Clock.currentTimeMillis, (now): CacheLookup<A> => {
          const entry = entries.get(group)
          if (entry !== undefined && entry.expiresAt > now) return { _tag: "Hit", value: read(entry) }
          if (entry !== undefined) entries.delete(group)
          return { _tag: "Miss", version: versionOf(group) }
        })
      return GroupMemberCache.of({
        members: (group) => lookup(group, (entry) => entry.members),
        role: (group, user) => lookup(group, (entry) => Option.fromNullishOr(entry.roles.get(user))),
        fill: (group, version, members) =>
          Effect.map(Clock.currentTimeMillis, (now) => {
            if (versions.get(group) !== version) return false
            entries.delete(group)
            entries.set(group, {
              members: [...members],
              roles: new Map(members.map((m) => [m.user_id, m.role])),
              expiresAt: now + ttl
            })
            if (entries.size > options.maxGroups) entries.delete(entries.keys().next().value!)
            return true
          }),
        invalidate: (groups) =>
          Effect.sync(() => {
            for (const group of groups) {
              entries.delete(group)
              versions.delete(group)
              versions.set(group, freshVersion())
            }
          })
      })
    })

  /** GROUP_CACHE_TTL (default 10 minutes) and GROUP_CACHE_MAX_GROUPS (default 10,000). */
  static readonly layerMemoryConfig = Layer.unwrap(
    Effect.map(
      Config.all({
        ttl: Config.Duration("GROUP_CACHE_TTL").pipe(Config.withDefault(Duration.minutes(10))),
        maxGroups: Config.Int("GROUP_CACHE_MAX_GROUPS").pipe(Config.withDefault(10_000))
      }),
      GroupMemberCache.layerMemory
    )
  )
}
