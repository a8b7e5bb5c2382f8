import * as Settings from "./Settings.ts"
import type { GroupMember, GroupRole } from "@im/domain/Group"
import type { GroupId, UserId } from "@im/domain/Ids"
import { Clock, Config, Context, Duration, Effect, Layer, Option } from "effect"
import type { PortError } from "./PortError.ts"
import { VersionedEntries } from "./VersionedEntries.ts"

/**
 * What a lookup found: the cached value, or a miss with the group's current cache version. A
 * reader that loads the members from the store after a miss hands that version back to `fill`,
 * which stores them only if no write has changed the version since: a load that raced a write
 * is never cached.
 */
export type CacheLookup<A> =
  | { readonly _tag: "Hit"; readonly value: A }
  | { readonly _tag: "Miss"; readonly version: string }

/** `GROUP_CACHE_TTL` (default 10 minutes): how long a group's cached member list lives, in this process or in Redis. */
export const GroupCacheTtl = Settings.positiveDuration("GROUP_CACHE_TTL", Duration.minutes(10))

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
      interface Entry {
        readonly members: ReadonlyArray<GroupMember>
        readonly roles: ReadonlyMap<UserId, GroupRole>
      }
      const cached = new VersionedEntries<GroupId, Entry>(Duration.toMillis(Duration.fromInputUnsafe(options.ttl)), options.maxGroups)
      const lookup = <A>(group: GroupId, read: (entry: Entry) => A) =>
        Effect.map(Clock.currentTimeMillis, (now): CacheLookup<A> => {
          const entry = cached.get(group, now)
          return entry === undefined ? { _tag: "Miss", version: cached.versionOf(group) } : { _tag: "Hit", value: read(entry) }
        })
      return GroupMemberCache.of({
        members: (group) => lookup(group, (entry) => entry.members),
        role: (group, user) => lookup(group, (entry) => Option.fromNullishOr(entry.roles.get(user))),
        fill: (group, version, members) =>
          Effect.map(Clock.currentTimeMillis, (now) =>
            cached.fill(group, version, { members: [...members], roles: new Map(members.map((m) => [m.user_id, m.role])) }, now)),
        invalidate: (groups) => Effect.sync(() => cached.invalidate(groups))
      })
    })

  /** GROUP_CACHE_TTL (default 10 minutes) and GROUP_CACHE_MAX_GROUPS (default 10,000). */
  static readonly layerMemoryConfig = Layer.unwrap(
    Effect.map(
      Config.all({
        ttl: GroupCacheTtl,
        maxGroups: Settings.int("GROUP_CACHE_MAX_GROUPS", 10_000, { minimum: 1 })
      }),
      GroupMemberCache.layerMemory
    )
  )
}
