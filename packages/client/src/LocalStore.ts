import type { InboxEntry } from "./Wire.ts"

/**
 * Where the SDK keeps the user's inbox on the device: messages keyed by `server_id`, kept in seq
 * order, and the local synced seq. Every method is async so an IndexedDB or SQLite store can
 * implement it.
 */
export interface LocalStore {
  /**
   * Stores the entries whose `server_id` is not held yet, and returns those, in the order given.
   * An entry already held is left as it is.
   */
  readonly put: (entries: ReadonlyArray<InboxEntry>) => Promise<ReadonlyArray<InboxEntry>>
  readonly getByServerId: (serverId: string) => Promise<InboxEntry | undefined>
  /** A `local_id` is unique per sender only, so the lookup names the sender too. */
  readonly getByLocalId: (senderId: string, localId: string) => Promise<InboxEntry | undefined>
  /**
   * Held entries ascending by seq (entries under one seq, possible only after the server lost
   * data, in the order they were stored), with `after < seq`, at most `limit` of them.
   */
  readonly entries: (query?: { readonly after?: number; readonly limit?: number }) => Promise<ReadonlyArray<InboxEntry>>
  /** The local synced seq: everything at or below it is settled. 0 for a new store. */
  readonly getSeq: () => Promise<number>
  readonly setSeq: (seq: number) => Promise<void>
}

/** A `LocalStore` in memory: for tests, and for clients that sync from scratch on every start. */
export class MemoryLocalStore implements LocalStore {
  readonly #sorted: Array<InboxEntry> = [] // ascending by seq, ties in insertion order
  readonly #byServerId = new Map<string, InboxEntry>()
  readonly #byLocalId = new Map<string, InboxEntry>()
  #seq = 0

  readonly put = async (entries: ReadonlyArray<InboxEntry>): Promise<ReadonlyArray<InboxEntry>> => {
    const stored: Array<InboxEntry> = []
    for (const entry of entries) {
      if (this.#byServerId.has(entry.message.server_id)) continue
      this.#sorted.splice(upperBound(this.#sorted, entry.seq), 0, entry)
      this.#byServerId.set(entry.message.server_id, entry)
      this.#byLocalId.set(localKey(entry.message.sender_id, entry.message.local_id), entry)
      stored.push(entry)
    }
    return stored
  }

  readonly getByServerId = async (serverId: string): Promise<InboxEntry | undefined> => this.#byServerId.get(serverId)

  readonly getByLocalId = async (senderId: string, localId: string): Promise<InboxEntry | undefined> =>
    this.#byLocalId.get(localKey(senderId, localId))

  readonly entries = async (
    query: { readonly after?: number; readonly limit?: number } = {}
  ): Promise<ReadonlyArray<InboxEntry>> => {
    const start = upperBound(this.#sorted, query.after ?? -1)
    return this.#sorted.slice(start, query.limit === undefined ? undefined : start + query.limit)
  }

  readonly getSeq = async (): Promise<number> => this.#seq

  readonly setSeq = async (seq: number): Promise<void> => {
    this.#seq = seq
  }
}

const localKey = (senderId: string, localId: string): string => `${senderId}\u0000${localId}`

/** Index of the first entry with seq > `seq`. */
const upperBound = (sorted: ReadonlyArray<InboxEntry>, seq: number): number => {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid]!.seq <= seq) lo = mid + 1
    else hi = mid
  }
  return lo
}
