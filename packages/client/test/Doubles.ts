// Test doubles shared by the client's tests: a clock driven by hand, and what a fake socket's
// listeners take.
import type { Timers } from "../src/Client.ts"

/** Lets every pending promise, microtask and fake-socket event run. */
export const flush = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

interface Timer {
  readonly id: number
  at: number
  readonly run: () => void
  readonly every: number | undefined
}

export class FakeClock implements Timers {
  now = 1_000_000
  readonly timeouts: Array<number> = []
  #timers: Array<Timer> = []
  #nextId = 1

  readonly setTimeout = (run: () => void, ms: number): unknown => {
    this.timeouts.push(ms)
    return this.#add(run, ms, undefined)
  }
  readonly setInterval = (run: () => void, ms: number): unknown => this.#add(run, ms, ms)
  readonly clearTimeout = (handle: unknown): void => {
    this.#timers = this.#timers.filter((timer) => timer.id !== handle)
  }
  readonly clearInterval = this.clearTimeout

  get pending(): number {
    return this.#timers.length
  }

  /** Moves time forward, running due timers in order and letting their work finish. */
  async advance(ms: number): Promise<void> {
    await flush()
    const end = this.now + ms
    for (;;) {
      const next = this.#timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0]
      if (next === undefined) break
      this.now = next.at
      if (next.every === undefined) this.clearTimeout(next.id)
      else next.at += next.every
      next.run()
      await flush()
    }
    this.now = end
    await flush()
  }

  #add(run: () => void, ms: number, every: number | undefined): number {
    const timer: Timer = { id: this.#nextId++, at: this.now + ms, run, every }
    this.#timers.push(timer)
    return timer.id
  }
}

/** What a fake socket hands its listeners. */
export type Listener = (event: { readonly data?: unknown; readonly code?: number; readonly reason?: string }) => void
