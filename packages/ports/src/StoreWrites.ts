import type { Message } from "@im/domain/Message"
import { Context, Effect } from "effect"
import type { ConversationEntry } from "./ConversationStore.ts"
import type { InboxRef } from "./InboxStore.ts"
import type { PortError } from "./PortError.ts"

/** Db.save's writes: the messages, their new inbox entries, and the entries' conversations. */
export interface Save {
  readonly messages: ReadonlyArray<Message>
  readonly entries: ReadonlyArray<InboxRef>
  readonly conversations: ReadonlyArray<ConversationEntry>
}

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
  /**
   * Where the stores can, a save in one statement when none of its entries' messages has an
   * entry stored yet (the usual case): true when it stored every write, false when it stored none
   * and the save must go write by write (a replay, a number taken, an id it cannot carry).
   */
  readonly saveAtOnce?: ((save: Save) => Effect.Effect<boolean, PortError>) | undefined
}

/** Each write its own, as the effect makes them. */
export const direct: StoreWritesShape = {
  unit: (writes) => writes
}

export const StoreWrites = Context.Reference<StoreWritesShape>("@im/ports/StoreWrites", { defaultValue: () => direct })
