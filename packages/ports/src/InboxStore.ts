import type { ServerId, UserId } from "@im/domain/Ids"
import { Context, Effect, Layer } from "effect"
import type { PortError } from "./PortError.ts"

/** One inbox entry as stored: the message itself lives in the HistoryStore under `server_id`. */
export interface InboxRef {
  readonly user_id: UserId
  readonly seq: number
  readonly server_id: ServerId
}

/**
 * The key of an entry's (user, server_id) pair. User and server ids are made by the server and
 * hold no newline: the pair is its own key.
 */
export const entryKey = (user: UserId, serverId: ServerId): string => `${user}\n${serverId}`

/**
 * `entries` by entryKey, the first of several with one (user, server_id) kept: as a replay of it
 * would be, since a store keeps the pair it stored first.
 */
export const firstOfEachPair = <A extends Pick<InboxRef, "user_id" | "server_id">>(entries: Iterable<A>): Map<string, A> => {
  const first = new Map<string, A>()
  for (const entry of entries) {
    const key = entryKey(entry.user_id, entry.server_id)
    if (!first.has(key)) first.set(key, entry)
  }
  return first
}

/**
 * Of `stored` (entries found in a store), those of the pairs of `given` (firstOfEachPair) that
 * hold another seq than the one given: what an append returns.
 */
export const storedUnderOtherSeqs = (
  given: ReadonlyMap<string, Pick<InboxRef, "seq">>,
  stored: Iterable<InboxRef>
): Array<InboxRef> => {
  const moved: Array<InboxRef> = []
  for (const ref of stored) {
    const wanted = given.get(entryKey(ref.user_id, ref.server_id))
    if (wanted !== undefined && wanted.seq !== ref.seq) moved.push(ref)
  }
  return moved
}

/**
 * The seq each of `earlier` (entries an append found stored under another seq) is stored with,
 * by user and server_id; undefined for any other pair.
 */
export const storedSeqOf = (earlier: ReadonlyArray<InboxRef>): (user: UserId, serverId: ServerId) => number | undefined => {
  if (earlier.length === 0) return () => undefined
  const seqs = new Map(earlier.map((ref) => [entryKey(ref.user_id, ref.server_id), ref.seq]))
  return (user, serverId) => seqs.get(entryKey(user, serverId))
}

/**
 * `items` (entries, deliveries) under the seqs their entries are stored with, given those an
 * append found stored under another seq (`earlier`); the same array when there are none.
 */
export const withStoredSeqs = <A extends { readonly user_id: UserId; readonly seq: number }>(
  items: ReadonlyArray<A>,
  earlier: ReadonlyArray<InboxRef>,
  serverIdOf: (item: A) => ServerId
): ReadonlyArray<A> => {
  if (earlier.length === 0) return items
  const seqOf = storedSeqOf(earlier)
  return items.map((item) => {
    const seq = seqOf(item.user_id, serverIdOf(item))
    return seq === undefined || seq === item.seq ? item : { ...item, seq }
  })
}

export interface RangeQuery {
  readonly user: UserId
  /** Exclusive lower bound. */
  readonly after: number
  /** Inclusive upper bound; unbounded when absent. */
  readonly until?: number | undefined
  readonly limit: number
}

/**
 * Each user's totally ordered inbox. Appends are idempotent on (user, server_id): a replayed
 * entry is stored once. (user, seq) is unique too.
 */
export class InboxStore extends Context.Service<InboxStore, {
  /**
   * Stores the entries, and returns, as stored, those whose (user, server_id) was stored before
   * under another seq (another consumer stored the same message first): usually none.
   */
  readonly append: (entries: ReadonlyArray<InboxRef>) => Effect.Effect<ReadonlyArray<InboxRef>, PortError>
  /** The stored entries among the given (user, server_id) pairs. */
  readonly find: (
    keys: ReadonlyArray<Pick<InboxRef, "user_id" | "server_id">>
  ) => Effect.Effect<ReadonlyArray<InboxRef>, PortError>
  /** Entries with after < seq ≤ until, ascending, at most `limit`. */
  readonly range: (query: RangeQuery) => Effect.Effect<ReadonlyArray<InboxRef>, PortError>
  /** The highest stored seq of the user; 0 if the inbox is empty. */
  readonly newest: (user: UserId) => Effect.Effect<number, PortError>
}>()("@im/ports/InboxStore") {
  static readonly layerMemory = Layer.sync(InboxStore, () => {
    interface Inbox {
      readonly entries: Array<InboxRef> // ascending by seq
      readonly byServerId: Map<ServerId, InboxRef>
    }
    const inboxes = new Map<UserId, Inbox>()
    const inboxOf = (user: UserId): Inbox => {
      let inbox = inboxes.get(user)
      if (inbox === undefined) {
        inbox = { entries: [], byServerId: new Map() }
        inboxes.set(user, inbox)
      }
      return inbox
    }
    /** Index of the first entry with seq > after. */
    const upperBound = (entries: ReadonlyArray<InboxRef>, after: number): number => {
      let lo = 0
      let hi = entries.length
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (entries[mid]!.seq <= after) lo = mid + 1
        else hi = mid
      }
      return lo
    }
    return InboxStore.of({
      append: (refs) =>
        Effect.sync(() => {
          const earlier: Array<InboxRef> = []
          for (const ref of firstOfEachPair(refs).values()) {
            const inbox = inboxOf(ref.user_id)
            const before = inbox.byServerId.get(ref.server_id)
            if (before !== undefined) {
              if (before.seq !== ref.seq) earlier.push(before)
              continue
            }
            const at = upperBound(inbox.entries, ref.seq)
            if (at > 0 && inbox.entries[at - 1]!.seq === ref.seq) {
              // Two messages under one number would break the inbox's total order.
              throw new Error(`inbox ${ref.user_id} already has seq ${ref.seq}`)
            }
            inbox.entries.splice(at, 0, ref)
            inbox.byServerId.set(ref.server_id, ref)
          }
          return earlier
        }),
      find: (keys) =>
        Effect.sync(() =>
          keys.flatMap((key) => {
            const ref = inboxes.get(key.user_id)?.byServerId.get(key.server_id)
            return ref === undefined ? [] : [ref]
          })
        ),
      range: ({ after, limit, until, user }) =>
        Effect.sync(() => {
          const entries = inboxes.get(user)?.entries ?? []
          const start = upperBound(entries, after)
          const end = until === undefined ? entries.length : upperBound(entries, until)
          return entries.slice(start, Math.min(end, start + limit))
        }),
      newest: (user) => Effect.sync(() => inboxes.get(user)?.entries.at(-1)?.seq ?? 0)
    })
  })
}
