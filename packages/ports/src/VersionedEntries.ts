/**
 * The in-process half of a versioned cache (GroupMemberCache, BlockCache): entries that expire
 * after `ttl`, and per key a version that every invalidation replaces. Versions come from a
 * counter of this process and are never handed out twice, so forgetting one is safe; a `fill`
 * with a version an invalidation replaced (or that was forgotten) stores nothing, so a load that
 * raced a write is never cached. Past `maxEntries` entries the oldest go first.
 */
export class VersionedEntries<K, V> {
  private readonly entries = new Map<K, { readonly value: V; readonly expiresAt: number }>()
  private readonly versions = new Map<K, string>()
  private counter = 0
  private readonly ttlMs: number
  private readonly maxEntries: number

  constructor(ttlMs: number, maxEntries: number) {
    this.ttlMs = ttlMs
    this.maxEntries = maxEntries
  }

  /** The live value of `key` at `now`, if any (an expired one is dropped). */
  get(key: K, now: number): V | undefined {
    const entry = this.entries.get(key)
    if (entry !== undefined && entry.expiresAt > now) return entry.value
    if (entry !== undefined) this.entries.delete(key)
    return undefined
  }

  /** The current version of `key`, made when it has none. */
  versionOf(key: K): string {
    let version = this.versions.get(key)
    if (version === undefined) {
      version = this.freshVersion()
      this.versions.set(key, version)
      if (this.versions.size > this.maxEntries * 2) this.versions.delete(this.versions.keys().next().value!)
    }
    return version
  }

  /** Stores `value` if the version of `key` is still `version`; answers whether it did. */
  fill(key: K, version: string, value: V, now: number): boolean {
    if (this.versions.get(key) !== version) return false
    this.entries.delete(key)
    this.entries.set(key, { value, expiresAt: now + this.ttlMs })
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!)
    return true
  }

  /** Drops the keys' entries and gives each a new version. */
  invalidate(keys: Iterable<K>): void {
    for (const key of keys) {
      this.entries.delete(key)
      this.versions.delete(key)
      this.versions.set(key, this.freshVersion())
    }
  }

  private freshVersion(): string {
    return `${++this.counter}`
  }
}
