/**
 * A map of at most `capacity` entries: past it, the entry set longest ago goes first (setting a
 * key again makes it the newest). Every call takes constant time, amortized; the queue holds at
 * most about four times `capacity` items between rebuilds.
 *
 * Why not one `Map` that deletes its first key past the capacity: V8 leaves a hole for every
 * deleted entry until the table is rebuilt, and `keys().next()` walks over all of them, so each
 * eviction costs as much as the evictions before it. At 100,000 entries, 300,000 sets took 8.8 s.
 * Here the order is a queue of (key, stamp) beside the map; a queued stamp that is no longer the
 * key's (the key was set again or deleted) is skipped, and the queue is rebuilt from the live
 * entries when it holds more than twice as many as the map.
 */
export class RecentMap<K, V> {
  private readonly entries = new Map<K, { readonly value: V; readonly stamp: number }>()
  private queue: Array<{ readonly key: K; readonly stamp: number }> = []
  private head = 0
  private stamps = 0
  private readonly capacity: number

  constructor(capacity: number) {
    // 0 keeps nothing: a cache configured with no room caches nothing.
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`RecentMap capacity must be an integer ≥ 0, got ${capacity}`)
    this.capacity = capacity
  }

  get(key: K): V | undefined {
    return this.entries.get(key)?.value
  }

  has(key: K): boolean {
    return this.entries.has(key)
  }

  get size(): number {
    return this.entries.size
  }

  /** Sets `key` as the newest entry; past the capacity the oldest one goes. */
  set(key: K, value: V): void {
    const stamp = ++this.stamps
    this.entries.set(key, { value, stamp })
    this.queue.push({ key, stamp })
    while (this.entries.size > this.capacity) {
      const oldest = this.queue[this.head++]!
      if (this.entries.get(oldest.key)?.stamp === oldest.stamp) this.entries.delete(oldest.key)
    }
    this.compact()
  }

  delete(key: K): void {
    this.entries.delete(key)
    this.compact()
  }

  /** Each rebuild walks at most as many items as were skipped or made stale since the last one. */
  private compact(): void {
    const queued = this.queue.length - this.head
    if (queued > 2 * this.entries.size + 16) {
      this.queue = this.queue.slice(this.head).filter((item) => this.entries.get(item.key)?.stamp === item.stamp)
      this.head = 0
    } else if (this.head > 1_024 && this.head > queued) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }
}
