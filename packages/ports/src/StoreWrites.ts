import { Context, Effect } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * How a group of writes to several stores runs: Db.save's history, inbox entries and
 * conversations, one after the other. `unit` runs the effect that makes them and succeeds once
 * it has, failing with its first failure.
 *
 * By default it just runs it: stores on separate databases (the cluster's PostgreSQL and
 * MongoDB) have no transaction spanning them, and the order of the writes is what keeps an inbox
 * entry from being visible without its message. Stores that share a database with transactions
 * (standalone's PostgreSQL) provide one that runs it in one transaction: all of the writes are
 * kept or none, and they cost one commit instead of one each.
 */
export interface StoreWritesShape {
  readonly unit: <A, E, R>(writes: Effect.Effect<A, E, R>) => Effect.Effect<A, E | PortError, R>
}

/** Each write its own, as the effect makes them. */
export const direct: StoreWritesShape = {
  unit: (writes) => writes
}

export const StoreWrites = Context.Reference<StoreWritesShape>("@im/ports/StoreWrites", { defaultValue: () => direct })
