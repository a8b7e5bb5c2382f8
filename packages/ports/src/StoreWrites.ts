import { Context, Effect } from "effect"
import type { PortError } from "./PortError.ts"

/**
 * How a group of writes to several stores runs: Db.save's history, inbox entries and
 * conversations. `all` succeeds once every write has, and fails with the first failure.
 *
 * By default the writes run one after the other, in the order given, each only after the one
 * before succeeded: stores on separate databases (the cluster's PostgreSQL and MongoDB) have no
 * transaction spanning them, and that order is what keeps an inbox entry from being visible
 * without its message. Stores that share a database with transactions (standalone's PostgreSQL)
 * provide one that runs the writes, in the same order, in one transaction: all of them are kept
 * or none, and they cost one commit instead of one each.
 */
export interface StoreWritesShape {
  readonly all: <E, R>(writes: ReadonlyArray<Effect.Effect<void, E, R>>) => Effect.Effect<void, E | PortError, R>
}

/** One after the other, in order, stopping at the first failure. */
export const sequential: StoreWritesShape = {
  all: (writes) => Effect.forEach(writes, (write) => write, { discard: true })
}

export const StoreWrites = Context.Reference<StoreWritesShape>("@im/ports/StoreWrites", { defaultValue: () => sequential })
