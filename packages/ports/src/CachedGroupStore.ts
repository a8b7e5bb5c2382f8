import type { GroupMember } from "@im/domain/Group"
import type { GroupId } from "@im/domain/Ids"
import { Effect, Layer, Option } from "effect"
import { invalidatingWrite } from "./CacheWrites.ts"
import { type CacheLookup, GroupMemberCache } from "./GroupMemberCache.ts"
import { GroupStore } from "./GroupStore.ts"
import type { PortError } from "./PortError.ts"

/**
 * `inner` with `members` and `role` served from the GroupMemberCache. Every write goes to the
 * store and then invalidates the groups it touched (also when the write failed or was
 * interrupted: it may have committed); a write whose invalidation fails fails, so its caller
 * does not take a change for done while the cache may still show the old members. A reader
 * caches what it loaded only if no write invalidated the group meanwhile. When the cache cannot
 * be reached, reads go to the store.
 */
export const make = (inner: GroupStore["Service"], cache: GroupMemberCache["Service"]): GroupStore["Service"] => {
  const unreachable = (error: PortError) =>
    Effect.logWarning("group member cache unavailable; reading the store", error).pipe(Effect.as(Option.none()))

  const lookup = <A>(found: Effect.Effect<CacheLookup<A>, PortError>) =>
    found.pipe(Effect.map(Option.some), Effect.catchTag("PortError", unreachable))

  /** Loads from the store; caches it if the version still holds. */
  const load = (group: GroupId, version: string | undefined) =>
    inner.members(group).pipe(
      Effect.tap((members) =>
        version === undefined ? Effect.void : cache.fill(group, version, members).pipe(
          Effect.catchTag("PortError", (error) => Effect.logWarning("group member cache not filled", error))
        )
      )
    )

  /** The version a miss answered; none when the cache could not be asked. */
  const missVersion = <A>(found: Option.Option<CacheLookup<A>>) =>
    Option.isSome(found) && found.value._tag === "Miss" ? found.value.version : undefined

  const members = Effect.fn("CachedGroupStore.members")(function*(group: GroupId) {
    const found = yield* lookup(cache.members(group))
    if (Option.isSome(found) && found.value._tag === "Hit") return found.value.value
    return yield* load(group, missVersion(found))
  })

  const role = Effect.fn("CachedGroupStore.role")(function*(group: GroupId, user: GroupMember["user_id"]) {
    const found = yield* lookup(cache.role(group, user))
    if (Option.isSome(found) && found.value._tag === "Hit") return found.value.value
    const loaded = yield* load(group, missVersion(found))
    return Option.fromNullishOr(loaded.find((member) => member.user_id === user)?.role)
  })

  /** Runs a write, then invalidates `groups` whatever became of it. */
  const write = <A>(groups: ReadonlyArray<GroupId>, effect: Effect.Effect<A, PortError>) =>
    invalidatingWrite(cache.invalidate(groups), effect, "group member cache")

  return GroupStore.of({
    ...inner,
    members,
    role,
    create: (group, first) => write([group.id], inner.create(group, first)),
    addMembers: (id, added) => write([id], inner.addMembers(id, added)),
    admit: (id, added, max) => write([id], inner.admit(id, added, max)),
    removeMember: (id, user) => write([id], inner.removeMember(id, user)),
    setRole: (id, user, newRole) => write([id], inner.setRole(id, user, newRole)),
    transfer: (id, from, to) => write([id], inner.transfer(id, from, to)),
    dismiss: (id) => write([id], inner.dismiss(id)),
    acceptJoinRequest: (id, request, joinedAt, max) => write([id], inner.acceptJoinRequest(id, request, joinedAt, max))
  })
}

/** The decorator as a layer: the GroupStore in context, behind the GroupMemberCache in context. */
export const layer: Layer.Layer<GroupStore, never, GroupStore | GroupMemberCache> = Layer.effect(
  GroupStore,
  Effect.gen(function*() {
    return make(yield* GroupStore, yield* GroupMemberCache)
  })
)

/**
 * Standalone: the GroupStore in context behind a cache in this process (GROUP_CACHE_TTL,
 * GROUP_CACHE_MAX_GROUPS), where every write comes through this same decorator.
 */
export const layerMemory = layer.pipe(Layer.provide(GroupMemberCache.layerMemoryConfig))
