import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { MemoryLocalStore } from "../src/LocalStore.ts"
import { type PullRange, type SyncStep, SyncEngine } from "../src/SyncEngine.ts"
import type { InboxEntry, PullPage } from "../src/Wire.ts"

/**
 * One user's inbox on the server, answering `GET /inbox/newest` and `GET /inbox` as
 * docs/protocol.md says. A number is taken, then either stored or skipped for good; numbers may
 * be stored out of order (`reserve` takes one that is resolved later), and `through` never
 * claims a number still unresolved.
 */
class ModelServer {
  readonly stored = new Map<number, InboxEntry>()
  readonly unresolved: Array<number> = []
  #next = 1

  newest(): number {
    let newest = 0
    for (const seq of this.stored.keys()) newest = Math.max(newest, seq)
    return newest
  }

  /** Takes the next number and stores an entry under it. */
  add(): InboxEntry {
    return this.#store(this.#next++)
  }

  skip(): void {
    this.#next++
  }

  reserve(): void {
    this.unresolved.push(this.#next++)
  }

  /** Stores or skips the `index`th unresolved number; the stored entry, if any. */
  resolve(index: number, store: boolean): InboxEntry | undefined {
    const [seq] = this.unresolved.splice(index, 1)
    return store ? this.#store(seq!) : undefined
  }

  pull(after: number, until: number, limit: number): PullPage {
    const newest = this.newest()
    let upTo = Math.min(until, newest)
    for (const seq of this.unresolved) if (seq > after && seq <= upTo) upTo = seq - 1
    const inRange = [...this.stored.values()]
      .filter((e) => e.seq > after && e.seq <= upTo)
      .sort((a, b) => a.seq - b.seq)
    const entries = inRange.slice(0, limit)
    const through = inRange.length > limit ? entries.at(-1)!.seq : Math.max(after, upTo)
    // Literally: more entries remain above `through` within `until` (some may lie beyond an
    // unresolved number, so a page can come back with no progress).
    const has_more = [...this.stored.keys()].some((seq) => seq > through && seq <= Math.min(until, newest))
    return { entries, through, has_more }
  }

  inbox(): Array<string> {
    return [...this.stored.values()].sort((a, b) => a.seq - b.seq).map((e) => e.message.server_id)
  }

  #store(seq: number): InboxEntry {
    const entry: InboxEntry = {
      seq,
      message: {
        server_id: `m_${seq}`,
        local_id: `l_${seq}`,
        sender_id: "u_alice",
        kind: "single",
        receiver_id: "u_bob",
        content_type: "text",
        content: `message ${seq}`,
        create_time: seq,
        send_time: seq
      }
    }
    this.stored.set(seq, entry)
    return entry
  }
}

type Command =
  | { readonly type: "add" }
  | { readonly type: "skip" }
  | { readonly type: "reserve" }
  | { readonly type: "resolve"; readonly index: number; readonly store: boolean }
  | { readonly type: "deliver"; readonly index: number }
  | { readonly type: "drop"; readonly index: number }
  | { readonly type: "duplicate"; readonly index: number }
  | { readonly type: "answerPull"; readonly index: number }
  | { readonly type: "failPull"; readonly index: number }
  | { readonly type: "answerNewest" }
  | { readonly type: "retry" }
  | { readonly type: "disconnect" }
  | { readonly type: "connect" }

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ type: "add" as const }) },
  { weight: 1, arbitrary: fc.constant({ type: "skip" as const }) },
  { weight: 1, arbitrary: fc.constant({ type: "reserve" as const }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("resolve" as const), index: fc.nat(), store: fc.boolean() }) },
  { weight: 5, arbitrary: fc.record({ type: fc.constant("deliver" as const), index: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ type: fc.constant("drop" as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("duplicate" as const), index: fc.nat() }) },
  { weight: 4, arbitrary: fc.record({ type: fc.constant("answerPull" as const), index: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant("failPull" as const), index: fc.nat() }) },
  { weight: 2, arbitrary: fc.constant({ type: "answerNewest" as const }) },
  { weight: 1, arbitrary: fc.constant({ type: "retry" as const }) },
  { weight: 1, arbitrary: fc.constant({ type: "disconnect" as const }) },
  { weight: 2, arbitrary: fc.constant({ type: "connect" as const }) }
)

/**
 * The SDK's sync logic (engine + local store) wired the way `ImClient` wires it, with the
 * network in the test's hands: pushes and HTTP answers arrive when a command says so.
 */
class Harness {
  readonly server = new ModelServer()
  readonly store = new MemoryLocalStore()
  readonly engine = new SyncEngine(0)
  readonly heldIds = new Set<string>()
  connected = false
  newestAsked = false
  /** Pushes sent to the current socket, not delivered yet. */
  pushes: Array<InboxEntry> = []
  /** Pulls in flight, those of lost connections included (their answers may still come). */
  requests: Array<PullRange> = []
  /** The highest number the client was told about over the current connection. */
  told = 0
  /** Whether an answer of this connection stopped short at an unresolved number. */
  answeredShort = false

  readonly pageLimit: number

  constructor(pageLimit: number) {
    this.pageLimit = pageLimit
  }

  async run(cmd: Command): Promise<void> {
    const { server } = this
    switch (cmd.type) {
      case "add": {
        const entry = server.add()
        if (this.connected) this.pushes.push(entry)
        return
      }
      case "skip":
        return server.skip()
      case "reserve":
        return server.reserve()
      case "resolve": {
        if (server.unresolved.length === 0) return
        const entry = server.resolve(cmd.index % server.unresolved.length, cmd.store)
        if (entry !== undefined && this.connected) this.pushes.push(entry)
        return
      }
      case "deliver":
      case "duplicate": {
        if (this.pushes.length === 0) return
        const index = cmd.index % this.pushes.length
        const entry = this.pushes[index]!
        if (cmd.type === "deliver") this.pushes.splice(index, 1)
        return this.push(entry)
      }
      case "drop":
        if (this.pushes.length > 0) this.pushes.splice(cmd.index % this.pushes.length, 1)
        return
      case "answerPull": {
        if (this.requests.length === 0) return
        const [range] = this.requests.splice(cmd.index % this.requests.length, 1)
        return this.answer(range!)
      }
      case "failPull": {
        // The client gives up on the connection when a pull fails.
        if (this.requests.length === 0) return
        const [range] = this.requests.splice(cmd.index % this.requests.length, 1)
        this.engine.pullFailed(range!)
        return this.disconnect()
      }
      case "answerNewest": {
        if (!this.newestAsked) return
        this.newestAsked = false
        const newest = server.newest()
        this.told = Math.max(this.told, newest)
        return this.apply(this.engine.newest(newest))
      }
      case "retry":
        if (this.engine.needsRetry) await this.apply(this.engine.retry())
        return
      case "disconnect":
        return this.disconnect()
      case "connect":
        if (this.connected) return
        this.connected = true
        this.newestAsked = true
        this.told = 0
        this.answeredShort = false
        this.engine.connected()
        return
    }
  }

  disconnect(): void {
    if (!this.connected) return
    this.connected = false
    this.newestAsked = false
    this.pushes = []
    this.engine.disconnected()
  }

  async push(entry: InboxEntry): Promise<void> {
    this.told = Math.max(this.told, entry.seq)
    const held = (await this.store.getByServerId(entry.message.server_id)) !== undefined
    await this.apply(this.engine.pushed(entry, held))
  }

  async answer(range: PullRange): Promise<void> {
    const page = this.server.pull(range.after, range.until, this.pageLimit)
    if (this.server.unresolved.some((seq) => seq > range.after && seq <= range.until)) {
      this.answeredShort = true
    }
    await this.apply(this.engine.pulled(range, page))
  }

  async apply(step: SyncStep): Promise<void> {
    for (const entry of await this.store.put(step.store)) {
      expect(this.heldIds.has(entry.message.server_id)).toBe(false)
      this.heldIds.add(entry.message.server_id)
    }
    this.requests.push(...step.pulls)
    this.checkPulls(step.pulls)
  }

  /** A new pull overlaps no other pull in flight and asks for no number already settled. */
  checkPulls(issued: ReadonlyArray<PullRange>): void {
    const inFlight = this.engine.inFlight
    for (let i = 1; i < inFlight.length; i++) {
      expect(inFlight[i]!.after).toBeGreaterThanOrEqual(inFlight[i - 1]!.until)
    }
    for (const range of issued) {
      expect(range.after).toBeGreaterThanOrEqual(this.engine.seq)
      expect(range.until).toBeGreaterThan(range.after)
      for (const [lo, hi] of this.engine.settledAbove) {
        expect(range.until < lo || range.after >= hi).toBe(true)
      }
    }
  }

  /** Safety: every number at or below the local seq is really settled, and held if stored. */
  checkSafety(): void {
    const seq = this.engine.seq
    expect(seq).toBeLessThanOrEqual(this.server.newest())
    for (const unresolved of this.server.unresolved) expect(unresolved).toBeGreaterThan(seq)
    for (const entry of this.server.stored.values()) {
      if (entry.seq <= seq) expect(this.heldIds.has(entry.message.server_id)).toBe(true)
    }
  }

  /** Connected, with every push delivered and every answer in: runs until nothing is left to do. */
  async settle(allowRetry: () => boolean): Promise<void> {
    for (let rounds = 0; rounds < 10_000; rounds++) {
      if (this.pushes.length > 0) await this.push(this.pushes.shift()!)
      else if (this.newestAsked) await this.run({ type: "answerNewest" })
      else if (this.requests.length > 0) await this.answer(this.requests.shift()!)
      else if (this.engine.needsRetry && allowRetry()) await this.apply(this.engine.retry())
      else return
      this.checkSafety()
    }
    throw new Error("sync did not settle")
  }
}

describe("sync against a model server", () => {
  it("ends holding exactly the server's inbox, whatever the network did", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(command, { minLength: 20, maxLength: 150, size: "max" }),
        fc.integer({ min: 1, max: 4 }),
        async (commands, pageLimit) => {
          const h = new Harness(pageLimit)
          for (const cmd of commands) {
            await h.run(cmd)
            h.checkSafety()
          }

          // Liveness without a reconnect: once every number is resolved and every push and
          // answer has arrived, the client holds everything it was told about. Pulling what is
          // missing again is allowed only where the server answered short.
          while (h.server.unresolved.length > 0) await h.run({ type: "resolve", index: 0, store: true })
          await h.run({ type: "connect" })
          await h.settle(() => h.answeredShort)
          expect(h.engine.synced).toBe(true)
          expect(h.engine.seq).toBeGreaterThanOrEqual(h.told)

          // A final reconnect and sync: the local copy is exactly the server's inbox.
          h.disconnect()
          await h.run({ type: "connect" })
          await h.settle(() => false)
          const held = (await h.store.entries()).map((e) => e.message.server_id)
          expect(held).toEqual(h.server.inbox())
          expect(new Set(held).size).toBe(held.length)
          expect(h.engine.seq).toBe(h.server.newest())
          expect(h.engine.synced).toBe(true)
        }
      ),
      { numRuns: 200 }
    )
  })
})
