/**
 * Finds the Sets and Maps that many values pass through: a preload that counts the `add`, `set`,
 * `delete` and `clear` calls of every Set and Map, and on SIGUSR2 prints to stderr the busiest,
 * by where each was first written to.
 *
 *   node --import ./packages/bench/src/SetChurn.ts packages/standalone/src/main.ts
 *   kill -USR2 <pid>        # after some load; CHURN_MIN_OPS (default 1,000) sets the cut
 *
 * Why it matters (docs/benchmarks.md, "Young objects kept by old tables"): V8 replaces a hash
 * table that is cleared or rehashed, and when the Set or Map is in the old generation the old
 * table stays there, still holding what it held, until the next full collection. Young
 * collections take what it holds for live, so a long-lived Set that values keep passing through
 * promotes them all to the old generation, where only a full collection frees them.
 *
 * It slows every Set and Map, and keeps a WeakRef and a stack per instance: a diagnostic, not
 * for production.
 */
interface Counted {
  readonly kind: string
  readonly madeAt: string
  operations: number
  clears: number
}

const MAX_TRACKED = 200_000
const minOperations = Number(process.env["CHURN_MIN_OPS"] ?? 1_000)
const counted = new WeakMap<object, Counted>()
const tracked: Array<Counted> = []

/** The caller's frames, past this module's and the patched method's. */
const callerStack = (): string =>
  (new Error().stack ?? "").split("\n").slice(4, 10).map((line) => line.trim().replace(/^at /, "")).join(" | ")

const count = (instance: object, kind: string, clear: boolean) => {
  let entry = counted.get(instance)
  if (entry === undefined) {
    if (tracked.length >= MAX_TRACKED) return
    entry = { kind, madeAt: callerStack(), operations: 0, clears: 0 }
    counted.set(instance, entry)
    tracked.push(entry)
  }
  entry.operations++
  if (clear) entry.clears++
}

for (const [kind, prototype, methods] of [
  ["Set", Set.prototype, ["add", "delete", "clear"]],
  ["Map", Map.prototype, ["set", "delete", "clear"]]
] as const) {
  for (const method of methods) {
    const original = (prototype as unknown as Record<string, (...args: Array<unknown>) => unknown>)[method]!
    Object.defineProperty(prototype, method, {
      configurable: true,
      writable: true,
      value: function(this: object, ...args: Array<unknown>) {
        count(this, kind, method === "clear")
        return original.apply(this, args)
      }
    })
  }
}

/** The busiest first, instances made at the same place summed. */
export const report = (): ReadonlyArray<string> => {
  const byPlace = new Map<string, { operations: number; clears: number; instances: number }>()
  for (const entry of tracked) {
    if (entry.operations < minOperations) continue
    const key = `${entry.kind} made at ${entry.madeAt}`
    const sum = byPlace.get(key) ?? { operations: 0, clears: 0, instances: 0 }
    sum.operations += entry.operations
    sum.clears += entry.clears
    sum.instances++
    byPlace.set(key, sum)
  }
  return [...byPlace]
    .sort(([, a], [, b]) => b.operations - a.operations)
    .slice(0, 25)
    .map(([key, sum]) => `churn: ${sum.operations} operations, ${sum.clears} clears, ${sum.instances} instance(s): ${key}`)
}

process.on("SIGUSR2", () => {
  const lines = report()
  process.stderr.write(lines.length === 0 ? `churn: no Set or Map with ${minOperations} operations\n` : `${lines.join("\n")}\n`)
})
