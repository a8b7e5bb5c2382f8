import { RecentMap } from "./RecentMap.ts"

/**
 * The in-process half of a versioned cache (GroupMemberCache, BlockCache): entries that expire
 * after `ttl`, and per key a version that every invalidation replaces. Versions come from a
 * counter of this process and are never handed out twice, so forgetting one is safe; a `fill`
 * with a version an invalidation replaced (or that was forgotten) stores nothing, so a load that
 * raced a write is never cached. Past `maxEntries` entries the oldest go first.
 */
export class VersionedEntries<K, V> {
  private readonly entries: RecentMap<K, { readonly value: V; readonly expiresAt: number }>
  private readonly versions: RecentMap<K, string>
  private counter = 0
  private readonly ttlMs: number

  constructor(ttlMs: number, maxEntries: number) {
    this.ttlMs = ttlMs
    this.entries = new RecentMap(maxEntries)
    this.versions = new RecentMap(maxEntries * 2)
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
    }
    return version
  }

  /** Stores `value` if the version of `key` is still `version`; answers whether it did. */
  fill(key: K, version: string, value: V, now: number): boolean {
    if (this.versions.get(key) !== version) return false
    this.entries.set(key, { value, expiresAt: now + this.ttlMs })
    return true
  }

  /** Drops the keys' entries and gives each a new version. */
  invalidate(keys: Iterable<K>): void {
    for (const key of keys) {
      this.entries.delete(key)
      this.versions.set(key, this.freshVersion())
    }
  }

  private freshVersion(): string {
    return `${++this.counter}`
  }
}
