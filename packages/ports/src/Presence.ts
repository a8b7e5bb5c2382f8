import type { GatewayId, UserId } from "@im/domain/Ids"
import { Context, Effect, Layer } from "effect"
import type { PortError } from "./PortError.ts"

/** One connection a gateway holds. */
export interface PresenceEntry {
  readonly user: UserId
  readonly connection: string
}

/**
 * Which gateway instances hold which users' connections. A gateway registers each connection
 * and removes it on close; entries of a gateway that dies stop counting (real adapters: the
 * gateway expires a TTL after its last register or refresh, and what it left is removed later).
 */
export class Presence extends Context.Service<Presence, {
  readonly register: (user: UserId, gateway: GatewayId, connection: string) => Effect.Effect<void, PortError>
  readonly unregister: (user: UserId, gateway: GatewayId, connection: string) => Effect.Effect<void, PortError>
  /**
   * Keeps the gateway's entries alive while it answers `true`; a gateway calls it periodically.
   * `false` unless this run of the gateway (`run`, the same for a process's life) restored them
   * and the store kept them since: before its first `restore`, after the store lost its entries
   * (a Redis restarted empty, or entries left to expire), or a run before this one's; the
   * gateway then `restore`s.
   */
  readonly refresh: (gateway: GatewayId, run: string) => Effect.Effect<boolean, PortError>
  /**
   * Replaces the gateway's entries with `entries` (whatever a run before this one left goes)
   * and makes the gateway known to `refresh` for `run`. Fails, leaving it unknown, when the store
   * lost its data meanwhile.
   */
  readonly restore: (gateway: GatewayId, run: string, entries: ReadonlyArray<PresenceEntry>) => Effect.Effect<void, PortError>
  /** The gateways holding at least one connection of each user; users with none are absent. */
  readonly lookup: (users: ReadonlyArray<UserId>) => Effect.Effect<ReadonlyMap<UserId, ReadonlyArray<GatewayId>>, PortError>
}>()("@im/ports/Presence") {
  static readonly layerMemory = Layer.sync(Presence, () => {
    // user → gateway → connection ids
    const connections = new Map<UserId, Map<GatewayId, Set<string>>>()
    /** gateway → the run that restored it. */
    const known = new Map<GatewayId, string>()
    const add = (user: UserId, gateway: GatewayId, connection: string) => {
      let gateways = connections.get(user)
      if (gateways === undefined) connections.set(user, gateways = new Map())
      let ids = gateways.get(gateway)
      if (ids === undefined) gateways.set(gateway, ids = new Set())
      ids.add(connection)
    }
    return Presence.of({
      register: (user, gateway, connection) => Effect.sync(() => add(user, gateway, connection)),
      unregister: (user, gateway, connection) =>
        Effect.sync(() => {
          const gateways = connections.get(user)
          const ids = gateways?.get(gateway)
          if (gateways === undefined || ids === undefined) return
          ids.delete(connection)
          if (ids.size === 0) gateways.delete(gateway)
          if (gateways.size === 0) connections.delete(user)
        }),
      refresh: (gateway, run) => Effect.sync(() => known.get(gateway) === run),
      restore: (gateway, run, entries) =>
        Effect.sync(() => {
          for (const [user, gateways] of connections) {
            if (gateways.delete(gateway) && gateways.size === 0) connections.delete(user)
          }
          for (const { connection, user } of entries) add(user, gateway, connection)
          known.set(gateway, run)
        }),
      lookup: (users) =>
        Effect.sync(() => {
          const found = new Map<UserId, ReadonlyArray<GatewayId>>()
          for (const user of users) {
            const gateways = connections.get(user)
            if (gateways !== undefined) found.set(user, [...gateways.keys()])
          }
          return found
        })
    })
  })
}
